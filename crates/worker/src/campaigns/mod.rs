//! Campaigns at work (campaigns.md §2 and §4): the moves of their state machine that several
//! paths share ([`lifecycle`]), the fan-out of a SENDING campaign to its audience
//! ([`fanout`]), scheduled campaigns starting in their minute's tick ([`schedule`]), and the
//! campaigns a sender reads for its emails' content and status ([`cache`]).

pub mod cache;
pub mod fanout;
pub mod lifecycle;
pub mod schedule;
