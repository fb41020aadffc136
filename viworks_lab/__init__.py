"""The lab: a local replica of a ViWorkS deployment, built from Debian packages, for proving the suite.

It may use ``viworks_verify`` (one truth for pins and the wire protocol); the suite never imports it.
This file imports nothing: the reference agents are shipped as zipapps that contain this package.
"""
