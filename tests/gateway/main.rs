//! Integration tests: the real gateway binary between a raw HTTP client and a real upstream.

mod harness;
mod instances;

mod availability;
mod browser;
mod config_cli;
mod cookies;
mod databases;
mod demo;
mod directory;
mod documents;
mod encoding_attacks;
mod flow;
mod limits;
mod oidc_flow;
mod oidc_hostile;
mod pages;
mod peers;
mod reload;
mod rotate;
mod routing;
mod spec;
mod spoofing;
mod store_conformance;
mod tls;
mod wsfed_attacks;
mod wsfed_flow;
