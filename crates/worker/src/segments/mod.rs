//! Segments in the background: materialised DYNAMIC membership kept current contact by contact
//! ([`membership`]), the timers that re-evaluate contacts when a time-relative condition crosses
//! a boundary ([`timers`]), and the queued full passes of recounts and computations ([`jobs`]).

pub mod jobs;
pub mod membership;
pub mod timers;
