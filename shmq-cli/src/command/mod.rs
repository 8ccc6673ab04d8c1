//! One module per verb. Each has `Args` (its clap arguments) and
//! `run(Args) -> Result<(), Failure>`.

pub mod ack;
pub mod create;
pub mod dlq;
pub mod extend;
pub mod inspect;
pub mod nack;
pub mod peek;
pub mod recover;
pub mod recv;
pub mod send;
pub mod stat;
