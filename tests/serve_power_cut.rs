//! `pulpo serve` with fsync answers a put or a delete only once it is on disk: clients put and
//! delete over many connections (so that their changes share group commits through the
//! server's committer) on a queue in a lazy filesystem (`pulpo_testkit::lazyfs`), the power is
//! cut at a random moment, and after a reboot every acknowledged put is there, whole, unless
//! its delete was acknowledged, and no acknowledged delete is undone.

#[path = "serve_process/mod.rs"]
mod serve_process;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pulpo_filequeue::{Error, FileQueue, Options};
use pulpo_testkit::lazyfs::{LazyFs, Rng, Tear};
use serve_process::Serve;

/// Connections putting and deleting at once.
const CLIENTS: usize = 8;
/// Power cuts in the test.
const CYCLES: u64 = 10;

/// What the clients were told.
#[derive(Default)]
struct Acked {
    /// Bodies of acknowledged puts, by id.
    puts: BTreeMap<u64, Vec<u8>>,
    /// Ids whose delete was acknowledged.
    deletes: BTreeSet<u64>,
    /// Ids whose delete was sent but not answered: either way is right.
    unsure: BTreeSet<u64>,
}

/// One client: puts (one at a time) and deletes every third job it put, until `stop` or the
/// connection fails (the server dies after the cut).
fn client(address: &str, k: usize, acked: &Mutex<Acked>, stop: &AtomicBool, count: &AtomicU64) {
    let Ok(stream) = TcpStream::connect(address) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    let mut mine = Vec::new();
    for n in 0u64.. {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let body = format!("client {k} job {n} {}", "x".repeat((n % 200) as usize));
        let put = format!("put 0 0 600 {}\r\n{body}\r\n", body.len());
        line.clear();
        if writer.write_all(put.as_bytes()).is_err() || reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let Some(id) = line
            .strip_prefix("INSERTED ")
            .and_then(|r| r.trim().parse::<u64>().ok())
        else {
            // After the cut the server answers INTERNAL_ERROR: nothing was promised.
            return;
        };
        acked.lock().unwrap().puts.insert(id, body.into_bytes());
        count.fetch_add(1, Ordering::Relaxed);
        mine.push(id);
        if n % 3 == 2 {
            let victim = mine.remove(0);
            acked.lock().unwrap().unsure.insert(victim);
            line.clear();
            if writer
                .write_all(format!("delete {victim}\r\n").as_bytes())
                .is_err()
                || reader.read_line(&mut line).unwrap_or(0) == 0
            {
                return;
            }
            match line.as_str() {
                "DELETED\r\n" => {
                    let mut acked = acked.lock().unwrap();
                    acked.unsure.remove(&victim);
                    acked.deletes.insert(victim);
                    count.fetch_add(1, Ordering::Relaxed);
                }
                _ => return,
            }
        }
    }
}

/// Opens the rebooted queue and checks it against what was acknowledged.
fn check(queue: &std::path::Path, acked: &Acked) -> Result<(), String> {
    let q = FileQueue::open(queue, Options::default())
        .map_err(|e| format!("the queue does not open after the cut: {e}"))?;
    for (&id, body) in &acked.puts {
        let deleted = acked.deletes.contains(&id);
        if acked.unsure.contains(&id) {
            continue;
        }
        match q.peek(id) {
            Ok(_) if deleted => return Err(format!("job {id} is back after its acknowledged delete")),
            Ok(job) if &job.body != body => return Err(format!("job {id} has another body: {:?}", job.body)),
            Ok(_) => {}
            Err(Error::NotFound { .. }) if deleted => {}
            Err(Error::NotFound { .. }) => return Err(format!("acknowledged job {id} is gone")),
            Err(e) => return Err(format!("peek {id}: {e}")),
        }
    }
    Ok(())
}

#[test]
fn acknowledged_puts_and_deletes_survive_a_power_cut() {
    let test = "acknowledged_puts_and_deletes_survive_a_power_cut";
    let backing = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(
        std::env::var("TESTKIT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            }),
    );
    let acked = Mutex::new(Acked::default());
    for cycle in 0..CYCLES {
        let seed = rng.next_u64();
        let Some(mut fs) = LazyFs::mount(backing.path(), test) else {
            return;
        };
        let queue = fs.path().join("queue");
        let serve = Serve::start_on_with(&queue, &[("PULPO_FILE__FSYNC", "true")]);
        let address = serve.address();
        let mut cycle_rng = Rng::new(seed);
        let cut_after = 50 + cycle_rng.below(400);
        let tear = [Tear::None, Tear::Sector, Tear::Page][cycle_rng.below(3) as usize];
        let (stop, count) = (AtomicBool::new(false), AtomicU64::new(0));
        std::thread::scope(|sc| {
            for k in 0..CLIENTS {
                let (address, acked, stop, count) = (&address, &acked, &stop, &count);
                sc.spawn(move || client(address, k + CLIENTS * cycle as usize, acked, stop, count));
            }
            let t0 = Instant::now();
            while count.load(Ordering::Relaxed) < cut_after && t0.elapsed() < Duration::from_secs(20) {
                std::thread::sleep(Duration::from_micros(300));
            }
            fs.cut(tear, cycle_rng.next_u64());
            stop.store(true, Ordering::Relaxed);
            // The server dies with the power; its clients' connections close.
            drop(serve);
        });
        let rebooted = fs.reboot();
        let acked = acked.lock().unwrap();
        if let Err(e) = check(&rebooted.join("queue"), &acked) {
            panic!(
                "cycle {cycle} (seed {seed}, cut after {cut_after} acknowledged commands, tear {tear:?}, {} puts and {} deletes acknowledged in all): {e}",
                acked.puts.len(),
                acked.deletes.len()
            );
        }
        assert!(
            count.load(Ordering::Relaxed) > 0,
            "cycle {cycle}: nothing was acknowledged"
        );
    }
}
