//! The `/authentication/api` surface: the miniSASS / SimpleJWT-style API, on the same user pool
//! and sessions as `/api`, so a frontend written against that Django app works by changing only
//! its base URL.

pub mod metadata;
pub mod session;
pub mod signup;
