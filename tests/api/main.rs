//! Black-box tests through the real app, each on its own fresh database.

mod account;
mod admin_cli;
mod binary;
mod clients;
mod compat;
mod db;
mod discovery;
mod e2e;
mod encodings;
mod errors;
mod hashing;
mod health;
mod helpers;
mod hosts;
mod housekeeping;
mod keys;
mod login;
mod mail;
mod newsletter;
mod openapi;
mod passwords;
mod sessions;
mod signup;
mod smtp;
mod tokens;
