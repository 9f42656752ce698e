//! Plain DNS over UDP and TCP (`udp://` and `tcp://`): for LAN resolvers and tests only.
