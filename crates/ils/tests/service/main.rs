//! `Service::launch` end to end over real loopback sockets (127.0.0.1 only): each
//! authentication method, each refusal with its code, throttling, and restarts from the store.

mod methods;
mod restart;
mod support;
