//! The listeners: UDP and TCP sockets that feed queries to the handler chain.

pub mod acl;
