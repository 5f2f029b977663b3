//! callgate's integration tests, one binary sharing one harness (`common`): a real server on a
//! random port with a temporary data directory, Twilio's signed webhooks, the real CLI binary,
//! and headless Chromium for the pages. One module per area; run one with
//! `cargo test --test it <module>::`, e.g. `cargo test --test it security::`.

mod common;

mod admin_page;
mod admin_people;
mod agent;
mod agent_console;
mod backup;
mod call_flow;
mod cli;
mod crash;
mod first_run;
mod guessing;
mod keys;
mod loadtest;
mod logging;
mod nodes_keys;
mod nodes_load;
mod nodes_resilience;
mod nodes_shared;
mod openapi;
mod postgres;
mod privacy;
mod properties;
mod query_plans;
mod reports;
mod routing;
mod scripts;
mod security;
mod softphone;
mod web;
