//! The async client (to be written).

/// Connection options.
#[derive(Debug, Clone)]
pub struct ConnectOptions;

/// A connection to beanstalkd.
#[derive(Debug)]
pub struct Client;
