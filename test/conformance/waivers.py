"""The checked-in list of conformance cases mc-proxy deliberately does not follow (waivers.txt),
each with the RFC text that allows what it does instead."""

import os


def load(suite):
    """{case name: reason} of `suite`'s waivers. A line is `suite | case | RFC text`."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "waivers.txt")
    waived = {}
    with open(path) as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = [p.strip() for p in line.split("|")]
            if len(parts) != 3 or not parts[2]:
                raise ValueError(f"waivers.txt:{number}: expected `suite | case | RFC text`")
            if parts[0] == suite:
                waived[parts[1]] = parts[2]
    return waived
