"""``fleetbreaker simulate``: a fleet of environments sharing one circuit, in simulated time.

``model`` holds the run's parameters, the simulated clocks and the downstream; ``store`` the
store as the fleet sees it (one round trip of staleness, every operation counted);
``fleet`` the real ``CircuitBreaker`` per environment; ``powertools`` a model of the Powertools
circuit breaker for comparison; ``engine`` the event loop; ``figures`` what a run measured
(the JSON schema); ``cost`` DynamoDB's bill and one item's limits; ``report`` the text;
``checks`` the fleet guarantees ``--check`` enforces; ``matrix`` the policy x shape table;
``options`` the parsing of the command's values; ``plot`` the optional timeline (matplotlib).
docs/simulate.md describes the model and what it leaves out.
"""
