"""The suite's pytest plugin, one concern per module, registered through ``pytest_plugins``.

With ``early`` (the options, and the gathering child it starts: loaded by its entry point, before
the suite's conftest), the only modules of the helpers that import pytest. At session start the run takes
every host's snapshot from the gathering (``viworks_verify.gather.gathering``; the child's, or read here),
or loads a recorded one (``--snapshot-in``), and as soon as the edge answers it sends the command
round trips in the background. Checks get everything from fixtures: ``settings``, ``secrets``,
``edge``, ``api``, ``recorder``, per-host ``backend_host`` / ``gateway_host`` (parametrized from the
inventory or the snapshot, test ids naming the host) with their ``backend_snapshot`` /
``gateway_snapshot``, ``edge_snapshot``, whose fields are the facts checks judge (``Fact``: a value,
or the problem that kept it from being read, reported by the first check that needs it).

- ``state``: the run, ``Run.of(config)``: what the session knows of its target (settings, inventory,
  hosts, snapshots, baseline and drift, waivers, the recorder, the round trips, the problems already reported),
  which host each check is about (``HOST_PARAMETERS``), usage errors and exit codes; the modules below
  share it and nothing else;
- ``run``: the lifecycle hooks (validate, gather, settle the selection, wait for the edge once);
- ``schedule``: the order checks run in (each host's own checks together; the synthetic agent's on one xdist worker);
- ``hosts``: host parametrization, the host and snapshot fixtures, unreadable facts reported once;
- ``causes``: one cause, one failure: the checks a gateway host's blocker makes meaningless skip naming it;
- ``fixtures``: the live fixtures (edge, API, the synthetic agent's identity, round trips);
- ``reporting``: verdicts, redaction, waivers, the JSON summary, the HTML report, the terminal.
"""

# Registered by the root conftest (``pytest_plugins = PLUGIN_MODULES``). None imports another (what they
# share is ``state``, which is not registered): pytest can only rewrite the asserts of a module it imports
# itself, and warns on every run otherwise. The order is their hooks' order (pytest calls the hook of a
# later module first). The early module comes first, by its entry point.
PLUGIN_MODULES = [
    "viworks_verify.plugin.reporting",
    "viworks_verify.plugin.hosts",
    "viworks_verify.plugin.causes",
    "viworks_verify.plugin.fixtures",
    "viworks_verify.plugin.run",
    "viworks_verify.plugin.schedule",
]
