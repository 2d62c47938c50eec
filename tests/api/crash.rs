//! Crash safety, black-box against the real binary on 127.0.0.1:
//!
//! - SIGKILL at random moments while several clients write, on SQLite and PostgreSQL: every
//!   acknowledged create, update and delete is stored and in the audit trail, nothing appears
//!   that was never sent, the audit chain verifies;
//! - PostgreSQL restarted under load (fast and immediate stops of a cluster the test owns):
//!   503 with Retry-After within 5 s, never a 500, recovery without restarting the service,
//!   no acknowledged write lost;
//! - SQLite full (`SQLITE_MAX_SIZE_MB`) or read-only (`?mode=ro`): writes answer 503 saying
//!   so, reads go on, the file passes `PRAGMA integrity_check`;
//! - SQLite group commit: writes queued behind a commit that cannot happen are not acknowledged
//!   until it does, then commit together, each stored with the version it was answered with.
//!
//! Each run prints its counts (`--nocapture`): kills or restarts, acknowledged writes checked,
//! writes in doubt and how many of them were stored, lost.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    os::unix::process::ExitStatusExt,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use reqwest::StatusCode;
use serde_json::{Map, Value, json};
use tokio::sync::watch;

use crate::helpers::{
    Backend, SECRET, TestApp,
    cluster::{PgCluster, StopMode},
    server::{Server, run_cli, sqlite_url, stderr, stdout},
};

const ADMIN_PW: &str = "crash-test-root-passphrase";
/// Writers at once; each owns its employees, so its ledger alone says what each should hold.
const CLIENTS: usize = 4;
/// SIGKILLs per backend.
const KILLS: usize = 20;
/// PostgreSQL restarts, in these modes.
const RESTARTS: [StopMode; 4] = [
    StopMode::Fast,
    StopMode::Immediate,
    StopMode::Fast,
    StopMode::Immediate,
];
/// How soon an outage must be answered (503 with Retry-After).
const ANSWER_WITHIN: Duration = Duration::from_secs(5);
/// How soon after PostgreSQL accepts connections again a write must succeed.
const RECOVER_WITHIN: Duration = Duration::from_secs(10);

/// A small generator (SplitMix64) for the kill moments and the operations, seeded from the
/// clock; the seed is printed with the counts.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn seeded() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        Rng(nanos)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.next() % (to - from).max(1))
    }
}

/// An employee's fields, as the client last sent them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Person {
    name: String,
    city: String,
    country: String,
    dob: String,
}

impl Person {
    fn from_json(v: &Value) -> Person {
        let text = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
        Person {
            name: text("emp_name"),
            city: text("city"),
            country: text("country"),
            dob: text("emp_dob"),
        }
    }

    fn fields(&self) -> [(&'static str, &str); 4] {
        [
            ("emp_name", &self.name),
            ("city", &self.city),
            ("country", &self.country),
            ("emp_dob", &self.dob),
        ]
    }
}

const PLACES: [(&str, &str); 5] = [
    ("Oslo", "Norway"),
    ("Zürich", "Switzerland"),
    ("Kraków", "Poland"),
    ("Straßburg", "France"),
    ("Porto", "Portugal"),
];

#[derive(Debug, Clone)]
enum Op {
    Create(Person),
    /// PATCH of the name and the city.
    Update {
        name: String,
        city: String,
    },
    Delete,
}

impl Op {
    fn action(&self) -> &'static str {
        match self {
            Op::Create(_) => "employee.create",
            Op::Update { .. } => "employee.update",
            Op::Delete => "employee.delete",
        }
    }

    fn success(&self) -> StatusCode {
        match self {
            Op::Create(_) => StatusCode::CREATED,
            Op::Update { .. } => StatusCode::OK,
            Op::Delete => StatusCode::NO_CONTENT,
        }
    }

    /// The employee after this write, given the one before.
    fn apply(&self, before: Option<&Person>) -> Option<Person> {
        match self {
            Op::Create(person) => Some(person.clone()),
            Op::Update { name, city } => before.map(|p| Person {
                name: name.clone(),
                city: city.clone(),
                ..p.clone()
            }),
            Op::Delete => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// 201 / 200 / 204: the service said it is stored.
    Acknowledged,
    /// No answer (the server died with the request in flight), or 503: stored or not, the
    /// client cannot know. The audit trail says which; the employee is not touched again.
    InDoubt,
}

/// One write a client sent, in the order it sent them.
#[derive(Debug, Clone)]
struct Write {
    request_id: String,
    emp_id: i64,
    op: Op,
    outcome: Outcome,
}

/// What one client saw.
#[derive(Debug, Default)]
struct Report {
    writes: Vec<Write>,
    /// Answers that break a promise: a 500, an unexpected status, a 503 without Retry-After or
    /// later than [`ANSWER_WITHIN`], a read that disagrees with the acknowledged writes.
    anomalies: Vec<String>,
    /// Requests that got no answer at all.
    transport_errors: usize,
    /// 503 answers.
    unavailable: usize,
    reads_checked: usize,
    slowest_answer: Duration,
}

/// Counters the conductor of a run watches.
#[derive(Default)]
struct Progress {
    acknowledged: AtomicUsize,
    unavailable: AtomicUsize,
}

/// Whether the server may vanish under the clients (SIGKILL) or must answer every request.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    Kills,
    AnswerEverything,
}

struct Client {
    id: usize,
    http: reqwest::Client,
    token: String,
    /// The server's base URL; `None` while it is down.
    base: watch::Receiver<Option<String>>,
    stop: Arc<AtomicBool>,
    progress: Arc<Progress>,
    expect: Expect,
    rng: Rng,
    report: Report,
    /// Employees whose stored state is known (no write in doubt), with that state.
    live: Vec<(i64, Person)>,
    created: i64,
    sent: u64,
}

impl Client {
    fn person(&mut self) -> Person {
        let (city, country) = PLACES[self.rng.below(PLACES.len())];
        Person {
            name: format!("Crash Test {}-{}", self.id, self.sent),
            city: city.to_owned(),
            country: country.to_owned(),
            dob: format!(
                "19{:02}-0{}-{:02}",
                50 + self.rng.below(50),
                1 + self.rng.below(9),
                1 + self.rng.below(28)
            ),
        }
    }

    /// The next operation and the employee's state before it: a read now and then (`None`),
    /// creates while there are few employees, else updates and deletes of this client's own
    /// employees (taken out of `live` until the answer says what they hold).
    fn next_op(&mut self) -> Option<(i64, Op, Option<Person>)> {
        let roll = self.rng.below(100);
        if self.live.len() < 4 || roll < 35 {
            self.created += 1;
            let emp_id = (self.id as i64 + 1) * 1_000_000 + self.created;
            let person = self.person();
            return Some((emp_id, Op::Create(person), None));
        }
        if roll >= 90 {
            return None;
        }
        let (emp_id, before) = self.live.swap_remove(self.rng.below(self.live.len()));
        let op = if roll < 75 {
            let (city, _) = PLACES[self.rng.below(PLACES.len())];
            let name = format!("Crash Test {}-{}", self.id, self.sent);
            Op::Update {
                name,
                city: city.to_owned(),
            }
        } else {
            Op::Delete
        };
        Some((emp_id, op, Some(before)))
    }

    async fn run(mut self) -> Report {
        while !self.stop.load(Ordering::Relaxed) {
            let Some(base) = self.base.borrow().clone() else {
                let _ = tokio::time::timeout(Duration::from_secs(1), self.base.changed()).await;
                continue;
            };
            self.sent += 1;
            match self.next_op() {
                Some((emp_id, op, before)) => self.write(&base, emp_id, op, before).await,
                None => self.read(&base).await,
            }
        }
        self.report
    }

    fn note_answer(
        &mut self,
        what: &str,
        status: StatusCode,
        retry_after: bool,
        took: Duration,
        body: &str,
    ) {
        self.report.slowest_answer = self.report.slowest_answer.max(took);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            self.report.unavailable += 1;
            self.progress.unavailable.fetch_add(1, Ordering::Relaxed);
            if !retry_after {
                self.report
                    .anomalies
                    .push(format!("{what}: 503 without Retry-After"));
            }
            if took > ANSWER_WITHIN {
                self.report
                    .anomalies
                    .push(format!("{what}: 503 after {took:?}"));
            }
        } else if status.is_server_error() {
            self.report
                .anomalies
                .push(format!("{what}: {status} {body}"));
        }
    }

    async fn write(&mut self, base: &str, emp_id: i64, op: Op, before: Option<Person>) {
        let request_id = format!("crash-{}-{}", self.id, self.sent);
        let url = match op {
            Op::Create(_) => format!("{base}/employees/"),
            _ => format!("{base}/employees/{emp_id}"),
        };
        let request = match &op {
            Op::Create(p) => self.http.post(url).json(&json!({
                "emp_id": emp_id, "emp_name": p.name, "city": p.city, "country": p.country, "emp_dob": p.dob,
            })),
            Op::Update { name, city } => self.http.patch(url).json(&json!({"emp_name": name, "city": city})),
            Op::Delete => self.http.delete(url),
        }
        .bearer_auth(&self.token)
        .header("x-request-id", &request_id);
        let started = Instant::now();
        let outcome = match request.send().await {
            Err(e) if e.is_connect() => {
                // Never reached a server: nothing can have happened.
                if let Some(before) = before {
                    self.live.push((emp_id, before));
                }
                self.after_lost_answer(base, &e).await;
                return;
            }
            Err(e) => {
                self.report.transport_errors += 1;
                self.after_lost_answer(base, &e).await;
                Outcome::InDoubt
            }
            Ok(res) => {
                let status = res.status();
                let retry_after = res.headers().contains_key("retry-after");
                let body = res.text().await.unwrap_or_default();
                let what = format!("{} {emp_id} ({request_id})", op.action());
                self.note_answer(&what, status, retry_after, started.elapsed(), &body);
                if status == op.success() {
                    Outcome::Acknowledged
                } else {
                    if status != StatusCode::SERVICE_UNAVAILABLE && !status.is_server_error() {
                        self.report
                            .anomalies
                            .push(format!("{what}: unexpected {status} {body}"));
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Outcome::InDoubt
                }
            }
        };
        if outcome == Outcome::Acknowledged {
            self.progress.acknowledged.fetch_add(1, Ordering::Relaxed);
            if let Some(after) = op.apply(before.as_ref()) {
                self.live.push((emp_id, after));
            }
        }
        self.report.writes.push(Write {
            request_id,
            emp_id,
            op,
            outcome,
        });
    }

    /// A read: one of this client's employees, which must show the last acknowledged write,
    /// or now and then a filtered list page (the other pools and query paths).
    async fn read(&mut self, base: &str) {
        match self.rng.below(4) {
            0 => return self.list(base).await,
            1 => return self.other_read(base).await,
            _ => {}
        }
        let Some((emp_id, expected)) = self.live.get(self.rng.below(self.live.len())).cloned()
        else {
            return;
        };
        let started = Instant::now();
        let res = self
            .http
            .get(format!("{base}/employees/{emp_id}"))
            .bearer_auth(&self.token)
            .send()
            .await;
        match res {
            Err(e) if e.is_connect() => self.after_lost_answer(base, &e).await,
            Err(e) => {
                self.report.transport_errors += 1;
                self.after_lost_answer(base, &e).await;
            }
            Ok(res) => {
                let status = res.status();
                let retry_after = res.headers().contains_key("retry-after");
                let body = res.text().await.unwrap_or_default();
                let what = format!("read {emp_id}");
                self.note_answer(&what, status, retry_after, started.elapsed(), &body);
                if status == StatusCode::OK {
                    self.report.reads_checked += 1;
                    let got = Person::from_json(&serde_json::from_str(&body).unwrap_or_default());
                    if got != expected {
                        self.report
                            .anomalies
                            .push(format!("{what}: got {got:?}, acknowledged {expected:?}"));
                    }
                } else if status == StatusCode::SERVICE_UNAVAILABLE {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                } else if !status.is_server_error() {
                    self.report
                        .anomalies
                        .push(format!("{what}: unexpected {status} {body}"));
                }
            }
        }
    }

    /// A list page filtered by a city: only its status is judged (others write meanwhile).
    async fn list(&mut self, base: &str) {
        let (city, _) = PLACES[self.rng.below(PLACES.len())];
        self.judge_status(base, &format!("/employees/?limit=20&city={city}"))
            .await;
    }

    /// Another path to the database: the caller's account, the audit trail, the archive.
    async fn other_read(&mut self, base: &str) {
        let paths = ["/users/me", "/audit?limit=5", "/employees/deleted?limit=5"];
        let path = paths[self.rng.below(paths.len())];
        self.judge_status(base, path).await;
    }

    /// A GET whose answer must be 200, or 503 with Retry-After within [`ANSWER_WITHIN`].
    async fn judge_status(&mut self, base: &str, path: &str) {
        let started = Instant::now();
        let res = self
            .http
            .get(format!("{base}{path}"))
            .bearer_auth(&self.token)
            .send()
            .await;
        match res {
            Err(e) if e.is_connect() => self.after_lost_answer(base, &e).await,
            Err(e) => {
                self.report.transport_errors += 1;
                self.after_lost_answer(base, &e).await;
            }
            Ok(res) => {
                let status = res.status();
                let retry_after = res.headers().contains_key("retry-after");
                let body = res.text().await.unwrap_or_default();
                let what = format!("GET {path}");
                self.note_answer(&what, status, retry_after, started.elapsed(), &body);
                if status == StatusCode::SERVICE_UNAVAILABLE {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                } else if status != StatusCode::OK && !status.is_server_error() {
                    self.report
                        .anomalies
                        .push(format!("{what}: unexpected {status} {body}"));
                }
            }
        }
    }

    /// After a request that got no answer: with kills expected, wait for the next server;
    /// otherwise it is a broken promise (the service must answer, 503 at worst).
    async fn after_lost_answer(&mut self, base: &str, error: &reqwest::Error) {
        match self.expect {
            Expect::AnswerEverything => {
                self.report.anomalies.push(format!("no answer: {error}"));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Expect::Kills => {
                let waited = tokio::time::timeout(
                    Duration::from_secs(60),
                    self.base
                        .wait_for(|b| b.as_deref().is_some_and(|b| b != base)),
                )
                .await;
                if waited.is_err() && !self.stop.load(Ordering::Relaxed) {
                    self.report
                        .anomalies
                        .push("no new server within 60 s".to_owned());
                }
            }
        }
    }
}

/// The clients of one run and what drives them.
struct Load {
    stop: Arc<AtomicBool>,
    progress: Arc<Progress>,
    tasks: Vec<tokio::task::JoinHandle<Report>>,
}

impl Load {
    fn start(
        base: watch::Receiver<Option<String>>,
        token: &str,
        expect: Expect,
        rng: &mut Rng,
    ) -> Load {
        let (stop, progress) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(Progress::default()),
        );
        let tasks = (0..CLIENTS)
            .map(|id| {
                let client = Client {
                    id,
                    http: http_client(),
                    token: token.to_owned(),
                    base: base.clone(),
                    stop: Arc::clone(&stop),
                    progress: Arc::clone(&progress),
                    expect,
                    rng: Rng(rng.next()),
                    report: Report::default(),
                    live: Vec::new(),
                    created: 0,
                    sent: 0,
                };
                tokio::spawn(client.run())
            })
            .collect();
        Load {
            stop,
            progress,
            tasks,
        }
    }

    fn acknowledged(&self) -> usize {
        self.progress.acknowledged.load(Ordering::Relaxed)
    }

    /// Waits until `more` further writes are acknowledged (at most `within`).
    async fn wait_for_writes(&self, more: usize, within: Duration) -> Result<Duration, usize> {
        let (target, started) = (self.acknowledged() + more, Instant::now());
        while self.acknowledged() < target {
            if started.elapsed() > within {
                return Err(self.acknowledged() + more - target);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(started.elapsed())
    }

    async fn finish(self) -> Vec<Report> {
        self.stop.store(true, Ordering::Relaxed);
        let mut reports = Vec::new();
        for task in self.tasks {
            reports.push(task.await.expect("a client task panicked"));
        }
        reports
    }
}

/// Stops the clients even when the test fails half-way, so no task outlives it.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client")
}

/// The server's settings for these runs: no request budget (the clients are the load).
fn server_env(database_url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", database_url.to_owned()),
        ("ADMIN_PASSWORD", ADMIN_PW.to_owned()),
        ("JWT_SECRET_KEY", SECRET.to_owned()),
        ("RATE_LIMIT_PER_MINUTE", "0".to_owned()),
    ]
}

async fn start_server(dir: &Path, env: &[(&'static str, String)]) -> Server {
    let mut builder = Server::builder().in_dir(dir);
    for (name, value) in env {
        builder = builder.env(name, value.clone());
    }
    builder.start().await
}

async fn login(http: &reqwest::Client, base: &str) -> String {
    let res = http
        .post(format!("{base}/auth/token"))
        .form(&[("username", "admin"), ("password", ADMIN_PW)])
        .send()
        .await
        .expect("login answered");
    assert_eq!(res.status(), StatusCode::OK, "login");
    res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned()
}

/// An employee entry of the audit trail.
#[derive(Debug)]
struct Audited {
    seq: i64,
    action: String,
    emp_id: i64,
    request_id: Option<String>,
    changes: Value,
}

/// Every employee entry of the audit trail, oldest first, following `after=` to the end.
async fn audit_trail(http: &reqwest::Client, base: &str, token: &str) -> Vec<Audited> {
    let (mut entries, mut after) = (Vec::new(), 0_i64);
    loop {
        let res = http
            .get(format!("{base}/audit?limit=1000&after={after}"))
            .bearer_auth(token)
            .send()
            .await
            .expect("audit page answered");
        assert_eq!(res.status(), StatusCode::OK, "audit page after {after}");
        let page: Vec<Value> = res.json().await.unwrap();
        for e in &page {
            after = e["seq"].as_i64().unwrap();
            let action = e["action"].as_str().unwrap_or_default();
            if action.starts_with("employee.") {
                entries.push(Audited {
                    seq: after,
                    action: action.to_owned(),
                    emp_id: e["target"]["id"].as_i64().unwrap_or_default(),
                    request_id: e["request_id"].as_str().map(str::to_owned),
                    changes: e["changes"].clone(),
                });
            }
        }
        if page.len() < 1000 {
            return entries;
        }
    }
}

/// Every stored employee, page by page; `X-Total-Count` must agree with the rows.
async fn stored_employees(
    http: &reqwest::Client,
    base: &str,
    token: &str,
) -> BTreeMap<i64, Person> {
    let mut stored = BTreeMap::new();
    let mut total = None;
    loop {
        let res = http
            .get(format!(
                "{base}/employees/?limit=1000&offset={}",
                stored.len()
            ))
            .bearer_auth(token)
            .send()
            .await
            .expect("list answered");
        assert_eq!(res.status(), StatusCode::OK, "list page");
        let count: usize = res.headers()["x-total-count"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        total.get_or_insert(count);
        let page: Vec<Value> = res.json().await.unwrap();
        let len = page.len();
        for e in page {
            stored.insert(e["emp_id"].as_i64().unwrap(), Person::from_json(&e));
        }
        if len < 1000 {
            break;
        }
    }
    assert_eq!(
        total,
        Some(stored.len()),
        "X-Total-Count against the rows listed"
    );
    stored
}

/// The audit `changes` a write from `before` to `after` must have recorded.
fn changes_between(before: Option<&Person>, after: Option<&Person>) -> Value {
    let mut changes = Map::new();
    let none = [
        ("emp_name", ""),
        ("city", ""),
        ("country", ""),
        ("emp_dob", ""),
    ];
    let from = before.map(Person::fields);
    let to = after.map(Person::fields);
    for i in 0..4 {
        let (name, _) = none[i];
        let old = from.map(|f| json!(f[i].1)).unwrap_or(Value::Null);
        let new = to.map(|f| json!(f[i].1)).unwrap_or(Value::Null);
        if old != new {
            changes.insert(name.to_owned(), json!({"from": old, "to": new}));
        }
    }
    Value::Object(changes)
}

/// What the checks found.
#[derive(Debug, Default)]
struct Verdict {
    acknowledged: usize,
    in_doubt: usize,
    in_doubt_stored: usize,
    employees: usize,
    /// Acknowledged writes missing from the audit trail, and employees whose stored state is
    /// not what the writes that were stored make of it.
    lost: Vec<String>,
    /// Audit entries or employees that no client sent.
    never_sent: Vec<String>,
    /// Audit entries that do not record what was sent, or not in the order it was sent.
    misrecorded: Vec<String>,
}

impl Verdict {
    fn assert_clean(&self) {
        let show = |v: &[String]| v.iter().take(20).cloned().collect::<Vec<_>>().join("\n  ");
        assert!(
            self.lost.is_empty(),
            "lost ({}):\n  {}",
            self.lost.len(),
            show(&self.lost)
        );
        assert!(
            self.never_sent.is_empty(),
            "never sent ({}):\n  {}",
            self.never_sent.len(),
            show(&self.never_sent)
        );
        assert!(
            self.misrecorded.is_empty(),
            "misrecorded ({}):\n  {}",
            self.misrecorded.len(),
            show(&self.misrecorded)
        );
    }
}

/// Checks the ledger of every client against the audit trail and the stored employees:
///
/// - every acknowledged write has its audit entry; a write in doubt may or may not;
/// - every employee audit entry is a write some client sent (its request id), recording
///   exactly the change that write made, in the order the client sent them;
/// - the stored employees are exactly what the recorded writes make: the acknowledged ones
///   and those in doubt that were stored; nothing else exists.
async fn verify(http: &reqwest::Client, base: &str, token: &str, writes: &[Write]) -> Verdict {
    let audit = audit_trail(http, base, token).await;
    let stored = stored_employees(http, base, token).await;
    let mut verdict = Verdict {
        employees: stored.len(),
        ..Verdict::default()
    };
    let sent: HashMap<&str, &Write> = writes.iter().map(|w| (w.request_id.as_str(), w)).collect();
    let mut recorded: HashMap<&str, &Audited> = HashMap::new();
    for entry in &audit {
        match entry
            .request_id
            .as_deref()
            .and_then(|id| sent.get(id).map(|w| (id, w)))
        {
            Some((id, w)) if w.emp_id == entry.emp_id && w.op.action() == entry.action => {
                if recorded.insert(id, entry).is_some() {
                    verdict.misrecorded.push(format!("{id} recorded twice"));
                }
            }
            _ => verdict.never_sent.push(format!(
                "audit seq {} {} of {} (request id {:?})",
                entry.seq, entry.action, entry.emp_id, entry.request_id
            )),
        }
    }
    // Replay each employee's writes in the order they were sent (one client each).
    let mut expected: BTreeMap<i64, Option<Person>> = BTreeMap::new();
    let mut last_seq: HashMap<i64, i64> = HashMap::new();
    for w in writes {
        let entry = recorded.get(w.request_id.as_str());
        match w.outcome {
            Outcome::Acknowledged => verdict.acknowledged += 1,
            Outcome::InDoubt => {
                verdict.in_doubt += 1;
                verdict.in_doubt_stored += usize::from(entry.is_some());
            }
        }
        let Some(entry) = entry else {
            if w.outcome == Outcome::Acknowledged {
                verdict.lost.push(format!(
                    "{} {} ({}) was acknowledged but is not in the audit trail",
                    w.op.action(),
                    w.emp_id,
                    w.request_id
                ));
            }
            continue;
        };
        let state = expected.entry(w.emp_id).or_default();
        let after = w.op.apply(state.as_ref());
        let want = changes_between(state.as_ref(), after.as_ref());
        if entry.changes != want {
            verdict.misrecorded.push(format!(
                "{} ({}): recorded {}, sent {}",
                w.request_id, entry.action, entry.changes, want
            ));
        }
        if let Some(previous) = last_seq.insert(w.emp_id, entry.seq)
            && previous > entry.seq
        {
            verdict.misrecorded.push(format!(
                "{}: recorded before an earlier write to {}",
                w.request_id, w.emp_id
            ));
        }
        *state = after;
    }
    for (emp_id, want) in &expected {
        match (want, stored.get(emp_id)) {
            (Some(want), Some(got)) if want == got => {}
            (None, None) => {}
            (want, got) => verdict.lost.push(format!(
                "employee {emp_id}: stored {got:?}, the recorded writes make {want:?}"
            )),
        }
    }
    let known: HashSet<i64> = writes.iter().map(|w| w.emp_id).collect();
    for emp_id in stored.keys().filter(|id| !known.contains(id)) {
        verdict
            .never_sent
            .push(format!("employee {emp_id} exists but no client created it"));
    }
    for emp_id in stored
        .keys()
        .filter(|id| known.contains(id) && !expected.contains_key(id))
    {
        verdict.never_sent.push(format!(
            "employee {emp_id} exists but no create of it was recorded"
        ));
    }
    verdict
}

/// `employee-api audit verify` against `env`'s database: exit 0, "audit trail OK".
fn assert_audit_chain_verifies(dir: &Path, env: &[(&'static str, String)]) -> String {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = run_cli(dir, &["audit", "verify"], &env, "");
    assert!(
        out.status.success(),
        "audit verify: {}{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out).trim().to_owned()
}

/// `PRAGMA integrity_check` of a SQLite file, opened read-only.
fn sqlite_integrity(path: &Path) -> String {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open the database");
    conn.query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .expect("integrity check")
}

fn all_writes(reports: &[Report]) -> Vec<Write> {
    reports
        .iter()
        .flat_map(|r| r.writes.iter().cloned())
        .collect()
}

fn all_anomalies(reports: &[Report]) -> Vec<String> {
    reports
        .iter()
        .flat_map(|r| r.anomalies.iter().cloned())
        .collect()
}

/// Kills the server with SIGKILL at random moments while the clients write, restarts it on the
/// same database each time, then checks every acknowledged write.
async fn sigkill_under_writes(label: &str, database_url: &str, dir: &Path) {
    let env = server_env(database_url);
    let mut rng = Rng::seeded();
    let seed = rng.0;
    let mut server = start_server(dir, &env).await;
    let http = http_client();
    let token = login(&http, &server.base).await;
    let (base_tx, base_rx) = watch::channel(Some(server.base.clone()));
    let load = Load::start(base_rx, &token, Expect::Kills, &mut rng);
    let _stop = StopOnDrop(Arc::clone(&load.stop));
    let started = Instant::now();
    let mut kills = 0;
    for _ in 0..KILLS {
        // Writes flowing on this server, then a random moment.
        if let Err(missing) = load.wait_for_writes(20, Duration::from_secs(30)).await {
            panic!(
                "{label}: {missing} writes short of 20 within 30 s; server:\n{}",
                server.output()
            );
        }
        tokio::time::sleep(rng.millis(0, 600)).await;
        let killed = server.kill().await;
        assert_eq!(
            killed.status.signal(),
            Some(9),
            "{label}: {}",
            killed.output
        );
        kills += 1;
        base_tx.send_replace(None);
        server = start_server(dir, &env).await;
        base_tx.send_replace(Some(server.base.clone()));
    }
    if let Err(missing) = load.wait_for_writes(20, Duration::from_secs(30)).await {
        panic!(
            "{label}: {missing} writes short after the last restart; server:\n{}",
            server.output()
        );
    }
    let reports = load.finish().await;
    let writes = all_writes(&reports);
    let verdict = verify(&http, &server.base, &token, &writes).await;
    let stopped = server.stop().await;
    assert_eq!(stopped.status.code(), Some(0), "{}", stopped.output);
    let chain = assert_audit_chain_verifies(dir, &env);
    let reads: usize = reports.iter().map(|r| r.reads_checked).sum();
    eprintln!(
        "crash test ({label}, seed {seed}): {kills} SIGKILLs in {:.1?}; {} acknowledged writes checked \
         (and {reads} reads); {} writes in doubt (no answer), {} of them stored; {} employees at the end; \
         lost: {}; {chain}",
        started.elapsed(),
        verdict.acknowledged,
        verdict.in_doubt,
        verdict.in_doubt_stored,
        verdict.employees,
        verdict.lost.len(),
    );
    let anomalies = all_anomalies(&reports);
    assert!(anomalies.is_empty(), "{label}: {anomalies:#?}");
    verdict.assert_clean();
    assert!(
        verdict.acknowledged > KILLS * 20,
        "{label}: too few writes to judge"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_no_acknowledged_write_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    sigkill_under_writes("SQLite", &sqlite_url(dir.path()), dir.path()).await;
    let integrity = sqlite_integrity(&dir.path().join("data/employees.db"));
    assert_eq!(integrity, "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_no_acknowledged_write_on_postgres() {
    // A schema of TEST_DATABASE_URL, dropped with `_storage` (skipped without it, outside CI).
    let Some((url, _storage)) = TestApp::fresh_database(Backend::Postgres).await else {
        return;
    };
    let employee_api::config::DatabaseUrl::Postgres(url) = url else {
        unreachable!("a PostgreSQL URL");
    };
    let dir = tempfile::tempdir().unwrap();
    sigkill_under_writes("PostgreSQL", url.expose(), dir.path()).await;
}

/// Restarts a PostgreSQL cluster the test owns under load: fast (sessions terminated, 57P01)
/// and immediate (every process killed, crash recovery at the next start).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_under_load_answers_503_never_500_and_loses_no_acknowledged_write() {
    let Some(cluster) = PgCluster::start_new().await else {
        return;
    };
    let database_url = cluster.url("postgres");
    let env = server_env(&database_url);
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path(), &env).await;
    let pid = server.pid();
    let http = http_client();
    let token = login(&http, &server.base).await;
    let mut rng = Rng::seeded();
    let seed = rng.0;
    let (_base_tx, base_rx) = watch::channel(Some(server.base.clone()));
    let load = Load::start(base_rx, &token, Expect::AnswerEverything, &mut rng);
    let _stop = StopOnDrop(Arc::clone(&load.stop));
    let mut recoveries = Vec::new();
    for mode in RESTARTS {
        if let Err(missing) = load.wait_for_writes(20, Duration::from_secs(30)).await {
            panic!(
                "{missing} writes short of 20 within 30 s; server:\n{}",
                server.output()
            );
        }
        tokio::time::sleep(rng.millis(0, 500)).await;
        let seen = load.progress.unavailable.load(Ordering::Relaxed);
        cluster.stop(mode).await;
        // Down for a random while, and until the clients have met the outage a few times
        // each (at most 5 s), so that reads and writes on every pool answer it.
        let (down, planned) = (Instant::now(), rng.millis(300, 1500));
        while (down.elapsed() < planned
            || load.progress.unavailable.load(Ordering::Relaxed) < seen + 2 * CLIENTS)
            && down.elapsed() < Duration::from_secs(5)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        cluster.start().await;
        let recovered = load
            .wait_for_writes(1, RECOVER_WITHIN)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no write succeeded within {RECOVER_WITHIN:?} of PostgreSQL's return ({mode:?}); server:\n{}\ncluster:\n{}",
                    server.output(),
                    cluster.log()
                )
            });
        recoveries.push((mode, recovered));
    }
    load.wait_for_writes(20, Duration::from_secs(30))
        .await
        .expect("writes after the last restart");
    let reports = load.finish().await;
    let writes = all_writes(&reports);
    let verdict = verify(&http, &server.base, &token, &writes).await;
    assert_eq!(server.pid(), pid, "the same process served throughout");
    let stopped = server.stop().await;
    assert_eq!(stopped.status.code(), Some(0), "{}", stopped.output);
    let chain = assert_audit_chain_verifies(dir.path(), &env);
    let unavailable: usize = reports.iter().map(|r| r.unavailable).sum();
    let slowest = reports
        .iter()
        .map(|r| r.slowest_answer)
        .max()
        .unwrap_or_default();
    eprintln!(
        "PostgreSQL restart test (seed {seed}): {} restarts, recovered after {:?}; {unavailable} answers 503 \
         (slowest answer {slowest:.1?}), no 500; {} acknowledged writes checked; {} writes answered 503, \
         {} of them stored; lost: {}; {chain}",
        RESTARTS.len(),
        recoveries,
        verdict.acknowledged,
        verdict.in_doubt,
        verdict.in_doubt_stored,
        verdict.lost.len(),
    );
    let anomalies = all_anomalies(&reports);
    assert!(
        anomalies.is_empty(),
        "{anomalies:#?}\nserver:\n{}",
        stopped.output
    );
    let transport_errors: usize = reports.iter().map(|r| r.transport_errors).sum();
    assert_eq!(transport_errors, 0, "every request is answered");
    assert!(
        unavailable > 0,
        "the outages were never seen: the test proved nothing"
    );
    verdict.assert_clean();
}

/// An employee body whose name takes room (a full database is reached in fewer requests).
fn bulky(emp_id: u64) -> Value {
    json!({
        "emp_id": emp_id,
        "emp_name": format!("Filler {emp_id} {}", "x".repeat(150)),
        "city": "Oslo",
        "country": "Norway",
        "emp_dob": "1990-05-17",
    })
}

/// A write refused because the database cannot store it: 503, Retry-After, and a detail that
/// names the reason (`expected`) without internals.
async fn assert_refused(res: reqwest::Response, what: &str, expected: &str) {
    let status = res.status();
    let retry_after = res.headers().get("retry-after").cloned();
    let body: Value = res.json().await.unwrap_or_default();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{what}: {body}");
    assert!(retry_after.is_some(), "{what}: Retry-After");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(expected), "{what}: {detail}");
    assert!(
        !detail.contains("SQLITE") && !detail.contains("code:"),
        "{what}: internals in {detail}"
    );
}

/// `GET /employees/?limit=1`'s `X-Total-Count`.
async fn total(http: &reqwest::Client, base: &str, token: &str) -> usize {
    let res = http
        .get(format!("{base}/employees/?limit=1"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "a list page");
    res.headers()["x-total-count"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// `SQLITE_MAX_SIZE_MB` stands in for a full disk: SQLite answers SQLITE_FULL in both cases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_sqlite_database_answers_writes_503_keeps_reads_and_stays_intact() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = server_env(&sqlite_url(dir.path()));
    env.push(("SQLITE_MAX_SIZE_MB", "1".to_owned()));
    let server = start_server(dir.path(), &env).await;
    let http = http_client();
    let token = login(&http, &server.base).await;
    let create = |emp_id: u64| {
        http.post(format!("{}/employees/", server.base))
            .bearer_auth(&token)
            .json(&bulky(emp_id))
            .send()
    };

    // Fill it: imports of 300 while they fit (all or nothing each), then one at a time.
    let (mut stored, mut next) = (0_usize, 1_u64);
    loop {
        let batch: Vec<Value> = (next..next + 300).map(bulky).collect();
        let res = http
            .post(format!("{}/employees/import", server.base))
            .bearer_auth(&token)
            .json(&batch)
            .send()
            .await
            .unwrap();
        match res.status() {
            StatusCode::OK => (stored, next) = (stored + 300, next + 300),
            _ => {
                assert_refused(res, "an import into the full database", "database is full").await;
                break;
            }
        }
        assert!(next < 20_000, "1 MiB never filled up");
    }
    let refused = loop {
        let res = create(next).await.unwrap();
        if res.status() != StatusCode::CREATED {
            break res;
        }
        (stored, next) = (stored + 1, next + 1);
        assert!(next < 20_000, "1 MiB never filled up");
    };
    assert_refused(refused, "the create that did not fit", "database is full").await;
    // Every later write is refused the same way: the writer connection is still usable.
    for emp_id in next + 1..next + 4 {
        assert_refused(
            create(emp_id).await.unwrap(),
            "a create",
            "database is full",
        )
        .await;
    }
    // A change may still fit in its page; if not, it is refused the same way.
    let patched = http
        .patch(format!("{}/employees/1", server.base))
        .bearer_auth(&token)
        .json(&json!({"emp_name": "y".repeat(200)}))
        .send()
        .await
        .unwrap();
    if patched.status() != StatusCode::OK {
        assert_refused(patched, "a change", "database is full").await;
    }

    // Reads go on.
    let one = http
        .get(format!("{}/employees/2", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(one.status(), StatusCode::OK);
    assert_eq!(total(&http, &server.base, &token).await, stored);
    let stopped = server.stop().await;
    assert_eq!(stopped.status.code(), Some(0), "{}", stopped.output);

    // Nothing is damaged, and nothing refused was stored.
    let path = dir.path().join("data/employees.db");
    assert_eq!(sqlite_integrity(&path), "ok");
    let rows: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("SELECT count(*) FROM employees", [], |row| row.get(0))
        .unwrap();
    assert_eq!(rows as usize, stored);
    let chain = assert_audit_chain_verifies(dir.path(), &env);

    // With room again, writes are accepted.
    env.retain(|(name, _)| *name != "SQLITE_MAX_SIZE_MB");
    let server = start_server(dir.path(), &env).await;
    let res = http
        .post(format!("{}/employees/", server.base))
        .bearer_auth(&token)
        .json(&bulky(next + 10))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    eprintln!("full SQLite database: {stored} employees fit in 1 MiB; integrity ok; {chain}");
}

/// `?mode=ro` stands in for a read-only file or mount: SQLite answers SQLITE_READONLY to every
/// write in all three cases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_sqlite_database_answers_writes_503_and_keeps_reads() {
    let dir = tempfile::tempdir().unwrap();
    let env = server_env(&sqlite_url(dir.path()));
    let server = start_server(dir.path(), &env).await;
    let http = http_client();
    let token = login(&http, &server.base).await;
    for emp_id in 1..=3 {
        let res = http
            .post(format!("{}/employees/", server.base))
            .bearer_auth(&token)
            .json(&bulky(emp_id))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
    }
    let stopped = server.stop().await;
    assert_eq!(stopped.status.code(), Some(0), "{}", stopped.output);
    let path = dir.path().join("data/employees.db");
    let before = std::fs::read(&path).unwrap();

    let ro_env = server_env(&format!("{}?mode=ro", sqlite_url(dir.path())));
    let server = start_server(dir.path(), &ro_env).await;
    let base = &server.base;
    // Reads, with the token issued before.
    let one = http
        .get(format!("{base}/employees/2"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(one.status(), StatusCode::OK);
    assert_eq!(one.json::<Value>().await.unwrap()["emp_id"], 2);
    assert_eq!(total(&http, base, &token).await, 3);
    let me = http
        .get(format!("{base}/users/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    // Writes of every kind, a login (it stores a session) included.
    let writes = [
        (
            "create",
            http.post(format!("{base}/employees/")).json(&bulky(4)),
        ),
        (
            "change",
            http.patch(format!("{base}/employees/1"))
                .json(&json!({"city": "Bergen"})),
        ),
        ("delete", http.delete(format!("{base}/employees/3"))),
    ];
    for (what, request) in writes {
        let res = request.bearer_auth(&token).send().await.unwrap();
        assert_refused(res, what, "database is read-only").await;
    }
    let login = http
        .post(format!("{base}/auth/token"))
        .form(&[("username", "admin"), ("password", ADMIN_PW)])
        .send()
        .await
        .unwrap();
    assert_refused(login, "a login", "database is read-only").await;
    let stopped = server.stop().await;
    assert_eq!(stopped.status.code(), Some(0), "{}", stopped.output);

    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the read-only server changed the database file"
    );
    assert_eq!(sqlite_integrity(&path), "ok");
    assert_audit_chain_verifies(dir.path(), &ro_env);
}

/// The value of the unlabelled series `name` in a Prometheus text exposition.
fn series(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{name} missing from:\n{metrics}"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_writes_queued_behind_a_commit_are_committed_together_and_each_acknowledged() {
    const WRITES: usize = 20;
    let dir = tempfile::tempdir().unwrap();
    let mut env = server_env(&sqlite_url(dir.path()));
    env.push(("METRICS_ADDR", "127.0.0.1:0".to_owned()));
    let server = start_server(dir.path(), &env).await;
    let http = http_client();
    let token = login(&http, &server.base).await;
    // Reading the trail seals the login's entry, so the sealer does not want the writer below.
    let trail = http
        .get(format!("{}/audit", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(trail.status(), StatusCode::OK);

    // Another process's writer (as the CLI beside the server would be) holds the write lock, so
    // the server's first group waits in BEGIN IMMEDIATE (busy timeout 5 s) and every write that
    // arrives meanwhile queues for the next one.
    let holder = rusqlite::Connection::open(dir.path().join("data/employees.db")).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let mut writes = tokio::task::JoinSet::new();
    for emp_id in 1..=WRITES as u64 {
        let (http, base, token) = (http.clone(), server.base.clone(), token.clone());
        writes.spawn(async move {
            let res = http
                .post(format!("{base}/employees/"))
                .bearer_auth(&token)
                .json(&bulky(emp_id))
                .send()
                .await
                .unwrap();
            (emp_id, res.status(), res.headers().get("etag").cloned())
        });
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        writes.try_join_next().is_none(),
        "no write is acknowledged while its commit cannot happen"
    );
    holder.execute_batch("COMMIT").unwrap();
    drop(holder);

    let mut acknowledged = writes.join_all().await;
    acknowledged.sort_by_key(|(emp_id, ..)| *emp_id);
    for (emp_id, status, etag) in &acknowledged {
        assert_eq!(*status, StatusCode::CREATED, "create {emp_id}");
        let res = http
            .get(format!("{}/employees/{emp_id}", server.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{emp_id} is stored");
        assert_eq!(
            res.headers().get("etag"),
            etag.as_ref(),
            "{emp_id}'s version"
        );
    }
    let metrics = server.scrape_metrics().await;
    let (groups, grouped) = (
        series(&metrics, "db_write_group_size_count"),
        series(&metrics, "db_write_group_size_sum"),
    );
    assert_eq!(grouped, WRITES as f64, "every create went through a group");
    // The first group waited for the lock; all that queued meanwhile made few groups more
    // (one, unless a request took longer than 2 s to arrive).
    assert!(
        groups < (WRITES / 2) as f64,
        "{groups} groups for {WRITES} writes"
    );
    let stopped = server.stop().await;
    assert_eq!(stopped.status.code(), Some(0), "{}", stopped.output);
    assert_eq!(
        sqlite_integrity(&dir.path().join("data/employees.db")),
        "ok"
    );
    assert_audit_chain_verifies(dir.path(), &env);
}
