//! One module per verb. Each has `Args` (its clap arguments) and
//! `run(Args) -> Result<(), Failure>`.

pub mod ack;
pub mod completions;
pub mod create;
pub mod dlq;
pub mod extend;
pub mod inspect;
pub mod ls;
pub mod nack;
pub mod peek;
pub mod purge;
pub mod recover;
pub mod recv;
pub mod rm;
pub mod send;
pub mod stat;
