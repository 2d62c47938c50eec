//! Group commit for SQLite's single writer.
//!
//! SQLite lets one connection write at a time, and with `synchronous = FULL` every commit
//! fsyncs the write-ahead log before the write is acknowledged. One transaction per request
//! therefore pays a `BEGIN`, a `COMMIT` and an fsync each, in turn. Here the employee writes
//! queue for one task that owns them: it takes every write already waiting, runs them one after
//! another in a single transaction and commits once, so a group of writes shares one `BEGIN`,
//! one `COMMIT` and one fsync (what PostgreSQL does for its backends with its WAL flush). Under
//! light load a group is one write, exactly as before; under load the queue that forms while a
//! group commits becomes the next group, so there is no added wait.
//!
//! A write is answered only after its group committed (or failed): an acknowledged write is
//! as durable as before. A write runs in the task, not in its request, so a client that goes
//! away mid-write cannot leave it half done.
//!
//! A write that fails (a full or read-only disk, an I/O error) rolls its whole group back, and
//! that failure is every member's answer: none of them was stored. A write that is refused on
//! its own merits (a taken `emp_id`) must not take its neighbours down: it returns the refusal
//! as its value, having written nothing (see [`Db::insert_employee`](super::Db::insert_employee):
//! SQLite undoes a statement that violates a constraint and keeps the transaction).

use std::panic::AssertUnwindSafe;

use futures_util::{FutureExt, future::BoxFuture};
use sqlx::{SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use super::{BeginWrite, Error};

/// The most writes committed in one group: bounds how long the writer is held from the
/// writes that do not queue here (logins, the audit sealer).
const MAX_GROUP: usize = 64;

/// Writes waiting for the group task; a caller waits for room beyond this.
const QUEUE: usize = 1_024;

/// A handle on the group task of one SQLite database; cheap to clone.
#[derive(Clone, Debug)]
pub(super) struct GroupCommit {
    queue: mpsc::Sender<Box<dyn Queued>>,
}

impl GroupCommit {
    /// Starts the task that commits the writes queued on the returned handle through `writer`
    /// (a pool of one connection). It ends when every handle is dropped.
    pub(super) fn start(writer: SqlitePool) -> Self {
        let (queue, waiting) = mpsc::channel(QUEUE);
        tokio::spawn(commit_groups(writer, waiting));
        Self { queue }
    }

    /// Runs `work` in the next group's transaction and answers once that group ended: `work`'s
    /// value if the group committed, the group's failure otherwise. An error from `work` fails
    /// its whole group.
    pub(super) async fn run<T, F>(&self, work: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, sqlx::Error>>
            + Send
            + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            work: Some(work),
            done: None,
            reply,
        };
        self.queue
            .send(Box::new(job))
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// The group task is gone: its runtime is shutting down.
fn stopped() -> Error {
    Error::Unavailable("the SQLite writer stopped".into())
}

/// A queued write, type-erased: run once in its group's transaction, answered once the group
/// ended.
trait Queued: Send {
    /// Runs the write. `Err`: it failed, and its group with it.
    fn run<'a>(&'a mut self, conn: &'a mut SqliteConnection) -> BoxFuture<'a, Result<(), Error>>;

    /// Tells the caller what happened; `group` is `Ok` when the group committed.
    fn answer(self: Box<Self>, group: Result<(), Error>);
}

struct Job<F, T> {
    work: Option<F>,
    done: Option<T>,
    reply: oneshot::Sender<Result<T, Error>>,
}

impl<F, T> Queued for Job<F, T>
where
    T: Send + 'static,
    F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, sqlx::Error>>
        + Send
        + 'static,
{
    fn run<'a>(&'a mut self, conn: &'a mut SqliteConnection) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            if let Some(work) = self.work.take() {
                self.done = Some(work(conn).await?);
            }
            Ok(())
        })
    }

    fn answer(self: Box<Self>, group: Result<(), Error>) {
        let answer = match (group, self.done) {
            (Ok(()), Some(done)) => Ok(done),
            (Err(err), _) => Err(err),
            (Ok(()), None) => Err(Error::Other("a queued write was never run".into())),
        };
        // The caller may have gone away; its write stands (or fell) all the same.
        let _ = self.reply.send(answer);
    }
}

/// The group task: takes every write waiting (up to [`MAX_GROUP`]), commits them as one
/// transaction, answers each, and again.
async fn commit_groups(writer: SqlitePool, mut waiting: mpsc::Receiver<Box<dyn Queued>>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while waiting.recv_many(&mut group, MAX_GROUP).await > 0 {
        // A panicking write (a bug) fails its group, not every later write.
        let result = AssertUnwindSafe(commit(&writer, &mut group))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| Err(Error::Other("a queued write panicked".into())));
        metrics::histogram!("db_write_group_size").record(group.len() as f64);
        for job in group.drain(..) {
            job.answer(result.clone());
        }
    }
}

/// Runs `group` in one transaction and commits it, or rolls it all back on the first write
/// that fails its group.
async fn commit(writer: &SqlitePool, group: &mut [Box<dyn Queued>]) -> Result<(), Error> {
    let mut tx = writer.begin_write().await?;
    for job in group.iter_mut() {
        // On failure, dropping `tx` rolls the group back.
        job.run(&mut tx).await?;
    }
    tx.commit().await?;
    Ok(())
}
