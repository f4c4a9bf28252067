//! Black-box tests through the real app, each on its own fresh database.

mod binary;
mod db;
mod discovery;
mod errors;
mod health;
mod helpers;
mod keys;
mod mail;
mod openapi;
mod smtp;
