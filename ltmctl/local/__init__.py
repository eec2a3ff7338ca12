"""The local stack: the Pub/Sub emulator, bqemulator and the services on loopback, state in .ltm/<env>/."""
