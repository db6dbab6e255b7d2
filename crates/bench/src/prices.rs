//! Public on-demand prices (AWS us-east-1) the cost figures use, in dollars.

/// DynamoDB, per million write request units.
pub const DYNAMO_WRU: f64 = 0.625;
/// DynamoDB, per million read request units.
pub const DYNAMO_RRU: f64 = 0.125;
/// DynamoDB storage, per GB-month.
pub const DYNAMO_GB_MONTH: f64 = 0.25;
/// SQS, per million requests.
pub const SQS_REQUEST: f64 = 0.40;
/// Lambda, per million requests.
pub const LAMBDA_REQUEST: f64 = 0.20;
/// Lambda (arm64), per GB-second.
pub const LAMBDA_GB_SECOND: f64 = 0.000_013_333_4;
