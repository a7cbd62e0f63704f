//! Setup shared by the client's tests against a real beanstalkd: a server
//! (started by `pulpo_testkit` on a free loopback port) with a client
//! connected to it, and tube lists in the form the assertions compare.

// Each test file uses only some of these helpers.
#![allow(dead_code)]

use pulpo_beanstalkd::{Client, ConnectOptions};
use pulpo_testkit::Beanstalkd;

/// A fresh server and a client connected to it with default options.
pub(crate) async fn start() -> (Beanstalkd, Client) {
    let server = Beanstalkd::start();
    let client = connect(&server).await;
    (server, client)
}

/// A fresh server and a client connected to it with `options` (its own
/// limits and timeout).
pub(crate) async fn start_with_client_options(options: ConnectOptions) -> (Beanstalkd, Client) {
    let server = Beanstalkd::start();
    let client = Client::connect_with(&server.address(), options).await.unwrap();
    (server, client)
}

/// Another client of `server`, with default options.
pub(crate) async fn connect(server: &Beanstalkd) -> Client {
    Client::connect(&server.address()).await.unwrap()
}

/// The tube names, sorted: the order of the server's lists is not part of
/// the protocol.
pub(crate) fn sorted<T: ToString>(tubes: impl IntoIterator<Item = T>) -> Vec<String> {
    let mut names: Vec<String> = tubes.into_iter().map(|t| t.to_string()).collect();
    names.sort();
    names
}
