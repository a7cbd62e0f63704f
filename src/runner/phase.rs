//! The stages of a run and how they reach every worker: running, then
//! stopping (no more reserving; in-flight handlers finish), then abandon
//! (in-flight handlers are cancelled and their jobs released).

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The stage of a run, sent to every worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Reserving and running jobs.
    Running,
    /// No more reserving; in-flight handlers finish.
    Stopping,
    /// In-flight handlers are cancelled and their jobs released.
    Abandon,
}

/// The runner's side: moves the run from stage to stage.
#[derive(Debug)]
pub(super) struct Phases {
    sender: watch::Sender<Phase>,
    /// Cancelled with the move to [`Phase::Stopping`]: waiting reserves give up.
    stopping: CancellationToken,
}

impl Phases {
    /// A run at [`Phase::Running`], with the receiver its workers watch.
    pub(super) fn new() -> (Phases, watch::Receiver<Phase>) {
        let (sender, receiver) = watch::channel(Phase::Running);
        let phases = Phases {
            sender,
            stopping: CancellationToken::new(),
        };
        (phases, receiver)
    }

    /// The token that waiting reserves give up on.
    pub(super) fn stopping(&self) -> CancellationToken {
        self.stopping.clone()
    }

    /// No more reserving: waiting reserves give up, handlers go on.
    pub(super) fn stop(&self) {
        let _ = self.sender.send(Phase::Stopping);
        self.stopping.cancel();
    }

    /// Cancel in-flight handlers and release their jobs.
    pub(super) fn abandon(&self) {
        let _ = self.sender.send(Phase::Abandon);
    }
}

/// Waits until the run reaches `stage` or a later one.
pub(super) async fn reached(phase: &mut watch::Receiver<Phase>, stage: Phase) {
    let later = |p: &Phase| match stage {
        Phase::Running => true,
        Phase::Stopping => *p != Phase::Running,
        Phase::Abandon => *p == Phase::Abandon,
    };
    if phase.wait_for(later).await.is_err() {
        // The runner is gone: nothing will change any more.
        std::future::pending::<()>().await;
    }
}
