"""Reference ViWorkS agents that speak the contract; each runs inside a lab container as a zipapp."""
