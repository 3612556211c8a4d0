"""The local stack: the topology of docker-compose.yml run as processes on this machine.

``breakerpanel up`` reads docker-compose.yml (:mod:`.compose`), plans the same services as local
processes on 127.0.0.1 (:mod:`.topology`), renders their configuration from the files compose
mounts (:mod:`.render`), starts them in their own process groups and waits until each answers
(:mod:`.supervisor`), and records what it started (:mod:`.state`) so that ``breakerpanel down``
stops exactly that.
"""
