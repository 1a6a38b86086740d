//! Integration tests: the real gateway binary between a raw HTTP client and a real upstream.

mod harness;

mod cookies;
mod config_cli;
mod flow;
mod routing;
mod spoofing;
