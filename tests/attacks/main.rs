//! Attacks on the built binary, run as a separate process so that its memory can be read from
//! `/proc`: floods of HTTP/2 streams from one address, while a client on another address keeps
//! calling. Each test prints its figures (`RSS before/during/after`) for the record, and runs
//! alone (they share the machine's memory and CPU with each other otherwise).

#[path = "../common/mod.rs"]
mod common;

mod h2_flood;
mod memory;
