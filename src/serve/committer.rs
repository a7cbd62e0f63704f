//! With fsync, one thread of the server waits for every connection's durable puts and deletes:
//! a connection appends its change at once (on its own task) and hands here what it must wait
//! for; the thread waits for the changes in the order they were made. One fdatasync then covers
//! every change appended while the previous one ran, and no connection holds a thread while it
//! waits, however many connections there are.

use pulpo_filequeue::{Error, FileQueue, Pending};
use tokio::sync::oneshot;

type Waiter = (Pending, oneshot::Sender<Result<(), Error>>);

/// A handle on the server's committer thread, which ends once every handle is gone.
#[derive(Clone, Debug)]
pub(crate) struct Committer {
    sender: std::sync::mpsc::Sender<Waiter>,
}

impl Committer {
    /// Starts the thread; it waits through `queue` (any handle of the process may wait for any
    /// of its changes).
    pub(crate) fn start(queue: FileQueue) -> std::io::Result<Committer> {
        let (sender, receiver) = std::sync::mpsc::channel::<Waiter>();
        std::thread::Builder::new()
            .name("pulpo-commit".to_owned())
            .spawn(move || {
                while let Ok(first) = receiver.recv() {
                    let mut waiters = vec![first];
                    waiters.extend(receiver.try_iter());
                    // The first wait usually syncs what all the others appended too; theirs
                    // then return at once.
                    waiters.sort_by_key(|(pending, _)| *pending);
                    for (pending, reply) in waiters {
                        let _ = reply.send(queue.wait_durable(pending));
                    }
                }
            })?;
        Ok(Committer { sender })
    }

    /// Returns once `pending` is on disk.
    pub(crate) async fn wait(&self, pending: Pending) -> Result<(), Error> {
        let gone = || Error::InvalidOptions("the server's commit thread has stopped".to_owned());
        let (reply, done) = oneshot::channel();
        self.sender.send((pending, reply)).map_err(|_| gone())?;
        done.await.map_err(|_| gone())?
    }
}
