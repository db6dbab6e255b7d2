//! Repositories: domain-level operations over the table port.

pub mod contacts;
pub mod domains;
pub mod events;
pub mod projects;
pub mod rate_limit;
pub mod scan;
