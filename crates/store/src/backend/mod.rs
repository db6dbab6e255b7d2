//! Implementations of the table port.

pub mod dynamo;
pub mod sqlite;
