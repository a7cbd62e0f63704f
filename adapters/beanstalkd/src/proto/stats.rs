//! The YAML documents of `stats-job`, `stats-tube`, `stats` and the tube
//! lists, as typed structs with every documented field.

use super::{ProtocolError, TubeName};

/// A job's state, as stats-job reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Waiting to be reserved.
    Ready,
    /// Waiting for its delay to pass.
    Delayed,
    /// Held by a worker.
    Reserved,
    /// Set aside until kicked.
    Buried,
}

/// `stats-job`: every field of protocol.txt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobStats {
    /// "id".
    pub id: u64,
}

/// `stats-tube`: every field of protocol.txt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TubeStats {
    /// "name".
    pub name: TubeName,
}

/// `stats`: every field of protocol.txt.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerStats {
    /// "pid".
    pub pid: u64,
}

impl JobStats {
    /// Parses a stats-job YAML document.
    pub fn parse(yaml: &[u8]) -> Result<JobStats, ProtocolError> {
        let _ = yaml;
        todo!()
    }
}

impl TubeStats {
    /// Parses a stats-tube YAML document.
    pub fn parse(yaml: &[u8]) -> Result<TubeStats, ProtocolError> {
        let _ = yaml;
        todo!()
    }
}

impl ServerStats {
    /// Parses a stats YAML document.
    pub fn parse(yaml: &[u8]) -> Result<ServerStats, ProtocolError> {
        let _ = yaml;
        todo!()
    }
}

/// Parses the YAML list of list-tubes / list-tubes-watched.
pub fn parse_tube_list(yaml: &[u8]) -> Result<Vec<TubeName>, ProtocolError> {
    let _ = yaml;
    todo!()
}

/// Writes a tube list as beanstalkd does (`---\n- default\n`).
pub fn tube_list_to_yaml(tubes: &[TubeName]) -> Vec<u8> {
    let _ = tubes;
    todo!()
}
