//! End to end in a real browser: the built binary serves `/docs` (Swagger UI), and headless
//! Chromium, driven over the W3C WebDriver protocol by chromedriver, logs in through
//! "Authorize" (OAuth2 password flow) and runs `GET /employees/` with "Try it out".
//!
//! Needs Debian's `chromium` and `chromium-driver` packages. Without them the test prints
//! `skipped: …` and passes, unless `BROWSER_TEST=1` is set (as CI does): then it fails.
//! The screenshot lands in `target/browser/docs-authorized.png`; a failed run leaves
//! `target/browser/docs-failure.png`, and the server and chromedriver logs sit next to them.
//!
//! The WebDriver client is a few lines of `reqwest` + `serde_json` rather than another crate.

use crate::helpers::free_port;
use std::{
    fs::File,
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use base64::Engine as _;
use reqwest::{Client, Method};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_employee-api");
const CHROMIUM: &str = "/usr/bin/chromium";
const ADMIN_PW: &str = "browser-test-root-passphrase";
/// Not in any example of the OpenAPI document, so only the live response can show it.
const EMPLOYEE: &str = "Grace Hopper";
/// The operation's block in Swagger UI: `#operations-{tag}-{operationId}`.
const OP: &str = "#operations-Employees-list_employees";
/// W3C WebDriver's key for an element reference in JSON.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
const WAIT: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(100);

fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser");
    std::fs::create_dir_all(&dir).expect("create target/browser");
    dir
}

fn http() -> Client {
    Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// A child process killed (and reaped) on drop.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `target/browser/{name}`, for a child's stdout and stderr.
fn log_file(name: &str) -> (Stdio, Stdio) {
    let file = File::create(artifacts().join(name)).expect("create log file");
    let copy = file.try_clone().expect("clone log file handle");
    (Stdio::from(file), Stdio::from(copy))
}

/// Finds `name` on `PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The chromedriver to use, or `None` (after saying why) when the browser is not installed.
/// With `BROWSER_TEST=1` a missing browser is a failure rather than a skip.
fn chromedriver_or_skip() -> Option<PathBuf> {
    let driver = on_path("chromedriver");
    let missing = if driver.is_none() {
        "chromedriver"
    } else if !Path::new(CHROMIUM).is_file() {
        CHROMIUM
    } else {
        return driver;
    };
    assert!(
        std::env::var_os("BROWSER_TEST").is_none_or(|v| v != "1"),
        "BROWSER_TEST=1 but {missing} is not installed (apt-get install chromium chromium-driver)"
    );
    println!("skipped: {missing} not installed");
    None
}

/// Polls `url` until it answers 200, and (chromedriver's `/status`) does not say
/// `"ready": false`; fails if `process` exits first or after `WAIT` * 2.
async fn wait_ready(client: &Client, url: &str, process: &mut Process, what: &str) {
    let deadline = Instant::now() + WAIT * 2;
    loop {
        if let Ok(res) = client.get(url).send().await
            && res.status() == 200
            && let Ok(body) = res.text().await
            && !matches!(serde_json::from_str::<Value>(&body), Ok(v) if v["value"]["ready"] == false)
        {
            return;
        }
        if let Ok(Some(status)) = process.0.try_wait() {
            panic!("{what} exited early with {status}; see target/browser/");
        }
        assert!(Instant::now() < deadline, "{what} did not become ready");
        tokio::time::sleep(POLL).await;
    }
}

/// The binary on a free port with a fresh SQLite file.
async fn start_server(client: &Client, dir: &Path) -> (Process, String) {
    let port = free_port();
    let (stdout, stderr) = log_file("server.log");
    let child = Command::new(BIN)
        .arg("serve")
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(
            "DATABASE_URL",
            format!("sqlite://{}/db/employees.db", dir.display()),
        )
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("ADMIN_PASSWORD", ADMIN_PW)
        .env("JWT_SECRET_KEY", "b".repeat(40))
        .env("RATE_LIMIT_PER_MINUTE", "0")
        .env("RUST_LOG", "info")
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("binary starts");
    let mut process = Process(child);
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(client, &format!("{base}/healthz"), &mut process, "server").await;
    (process, base)
}

async fn create_employee(client: &Client, base: &str) {
    let login = client
        .post(format!("{base}/auth/token"))
        .form(&[("username", "admin"), ("password", ADMIN_PW)])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200, "admin login over the API");
    let token = login.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let created = client
        .post(format!("{base}/employees/"))
        .bearer_auth(token)
        .json(&json!({"emp_id": 7, "emp_name": EMPLOYEE, "city": "Arlington", "country": "USA", "emp_dob": "1906-12-09"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "employee created");
}

/// A WebDriver session; deleted on drop, which also quits the browser.
struct Session {
    client: Client,
    /// `http://127.0.0.1:{port}/session/{id}`
    url: String,
    driver_port: u16,
    id: String,
}

impl Drop for Session {
    fn drop(&mut self) {
        // Drop cannot await, so send the DELETE over a plain socket. Waiting for the first
        // bytes of the answer is enough: chromedriver replies once the browser has quit
        // (it does not close the connection promptly, so do not read to the end).
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.driver_port)) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let request = format!(
                "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                self.id, self.driver_port
            );
            if stream.write_all(request.as_bytes()).is_ok() {
                let _ = stream.read(&mut [0; 512]);
            }
        }
    }
}

/// One WebDriver command; `Ok(value)` or `Err("error: message")`.
async fn command(
    client: &Client,
    method: Method,
    url: &str,
    body: Option<Value>,
) -> Result<Value, String> {
    let mut request = client.request(method.clone(), url);
    if method == Method::POST {
        request = request.json(&body.unwrap_or_else(|| json!({})));
    }
    let res = request.send().await.map_err(|e| format!("{url}: {e}"))?;
    let ok = res.status().is_success();
    let mut body = res
        .json::<Value>()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let value = body.get_mut("value").map(Value::take).unwrap_or_default();
    if ok {
        Ok(value)
    } else {
        Err(format!(
            "{}: {}",
            value["error"].as_str().unwrap_or("error"),
            value["message"].as_str().unwrap_or_default()
        ))
    }
}

impl Session {
    async fn new(client: &Client, driver_port: u16, profile: &Path) -> Session {
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1280,1600",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        }}});
        let base = format!("http://127.0.0.1:{driver_port}/session");
        let value = command(client, Method::POST, &base, Some(capabilities))
            .await
            .unwrap_or_else(|e| panic!("new WebDriver session: {e}"));
        let id = value["sessionId"].as_str().expect("sessionId").to_owned();
        Session {
            client: client.clone(),
            url: format!("{base}/{id}"),
            driver_port,
            id,
        }
    }

    async fn cmd(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value, String> {
        command(&self.client, method, &format!("{}{path}", self.url), body).await
    }

    async fn goto(&self, url: &str) {
        self.cmd(Method::POST, "/url", Some(json!({"url": url})))
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    async fn find(&self, css: &str) -> Result<String, String> {
        let found = self
            .cmd(
                Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await?;
        found[ELEMENT]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("no element reference in {found}"))
    }

    async fn element_text(&self, element: &str) -> Result<String, String> {
        let text = self
            .cmd(Method::GET, &format!("/element/{element}/text"), None)
            .await?;
        Ok(text.as_str().unwrap_or_default().to_owned())
    }

    /// Saves a screenshot of the viewport as PNG.
    async fn screenshot(&self, path: &Path) {
        let png = self
            .cmd(Method::GET, "/screenshot", None)
            .await
            .unwrap_or_else(|e| panic!("screenshot: {e}"));
        let png = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap_or_default())
            .expect("screenshot is base64");
        std::fs::write(path, png).expect("write screenshot");
    }

    async fn script(&self, script: &str, args: Value) -> Value {
        self.cmd(
            Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
        .unwrap_or_else(|e| panic!("script {script:?}: {e}"))
    }

    /// The message for a failed step: `what`, the errors Swagger UI shows (e.g. its
    /// parameter validation), and where the failure screenshot went. Never panics itself.
    async fn failure(&self, what: String) -> String {
        let script = "return [...document.querySelectorAll('.errors-wrapper, .modal-ux .errors')]\
                      .map(e => e.innerText).join('\\n')";
        let shown = self
            .cmd(
                Method::POST,
                "/execute/sync",
                Some(json!({"script": script, "args": []})),
            )
            .await
            .map_or_else(
                |e| format!("(unavailable: {e})"),
                |v| v.as_str().unwrap_or_default().to_owned(),
            );
        let shot = artifacts().join("docs-failure.png");
        let saved = match self.cmd(Method::GET, "/screenshot", None).await {
            Ok(Value::String(png)) => base64::engine::general_purpose::STANDARD
                .decode(png)
                .ok()
                .and_then(|png| std::fs::write(&shot, png).ok())
                .is_some(),
            _ => false,
        };
        let shot = if saved {
            shot.display().to_string()
        } else {
            "not saved".to_owned()
        };
        format!("{what}\nerrors shown on the page: {shown}\nscreenshot: {shot}")
    }

    /// Polls for the element until `WAIT` runs out.
    async fn wait_for(&self, css: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            match self.find(css).await {
                Ok(element) => return element,
                Err(e) if Instant::now() >= deadline => {
                    panic!(
                        "{}",
                        self.failure(format!("timed out waiting for {css}: {e}"))
                            .await
                    )
                }
                Err(_) => tokio::time::sleep(POLL).await,
            }
        }
    }

    /// Waits for the element and clicks it, retrying while it is covered, not yet
    /// interactable or re-rendered (the modal fades in and out, React replaces nodes).
    async fn click(&self, css: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let element = self.wait_for(css).await;
            match self
                .cmd(Method::POST, &format!("/element/{element}/click"), None)
                .await
            {
                Ok(_) => return,
                Err(e) if Instant::now() >= deadline => {
                    panic!("{}", self.failure(format!("clicking {css}: {e}")).await)
                }
                Err(_) => tokio::time::sleep(POLL).await,
            }
        }
    }

    async fn type_into(&self, css: &str, text: &str) {
        let element = self.wait_for(css).await;
        if let Err(e) = self
            .cmd(
                Method::POST,
                &format!("/element/{element}/value"),
                Some(json!({"text": text})),
            )
            .await
        {
            panic!("{}", self.failure(format!("typing into {css}: {e}")).await);
        }
    }

    /// Waits until the element exists and has non-blank text, and returns that text.
    async fn wait_text(&self, css: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(element) = self.find(css).await
                && let Ok(text) = self.element_text(&element).await
                && !text.trim().is_empty()
            {
                return text;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{}",
                    self.failure(format!("timed out waiting for text in {css}"))
                        .await
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Console messages the browser logged with source "security" (CSP violations).
    /// chromedriver's legacy log endpoint; an empty list if it is not available.
    async fn security_messages(&self) -> Vec<String> {
        let Ok(Value::Array(entries)) = self
            .cmd(Method::POST, "/se/log", Some(json!({"type": "browser"})))
            .await
        else {
            return Vec::new();
        };
        entries
            .iter()
            .filter(|e| e["source"] == "security")
            .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

#[tokio::test]
async fn swagger_ui_authorizes_and_runs_list_employees() {
    let Some(chromedriver) = chromedriver_or_skip() else {
        return;
    };
    let client = http();
    let dir = tempfile::tempdir().unwrap();
    let (_server, base) = start_server(&client, dir.path()).await;
    create_employee(&client, &base).await;

    let driver_port = free_port();
    let (stdout, stderr) = log_file("chromedriver.log");
    let mut driver = Process(
        Command::new(chromedriver)
            .arg(format!("--port={driver_port}"))
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("chromedriver starts"),
    );
    let driver_status = format!("http://127.0.0.1:{driver_port}/status");
    wait_ready(&client, &driver_status, &mut driver, "chromedriver").await;
    let profile = tempfile::tempdir().unwrap();
    // Declared after the processes so it drops first: the browser quits before they die.
    let browser = Session::new(&client, driver_port, profile.path()).await;

    browser.goto(&format!("{base}/docs/")).await;
    // The page-level button (the modal's own Authorize does not exist yet).
    browser.click(".auth-wrapper button.authorize").await;
    browser.type_into("#oauth_username", "admin").await;
    browser.type_into("#oauth_password", ADMIN_PW).await;
    browser
        .click(".modal-ux .auth-btn-wrapper button.authorize")
        .await;
    // Logged in: the modal's button turns into "Logout".
    browser
        .wait_for(r#".modal-ux .auth-btn-wrapper button[aria-label="Remove authorization"]"#)
        .await;
    browser
        .click(".modal-ux .auth-btn-wrapper button.btn-done")
        .await;

    browser
        .click(&format!("{OP} .opblock-summary-control"))
        .await;
    browser.click(&format!("{OP} button.try-out__btn")).await;
    browser.click(&format!("{OP} button.execute")).await;

    let status = browser
        .wait_text(&format!(
            "{OP} .live-responses-table .response .response-col_status"
        ))
        .await;
    let body = browser
        .wait_text(&format!(
            "{OP} .live-responses-table .response-col_description .highlight-code pre"
        ))
        .await;
    let curl = browser.wait_text(&format!("{OP} .curl-command")).await;

    // Screenshot first, so the artifact exists even when an assertion below fails.
    let live = browser
        .wait_for(&format!("{OP} .live-responses-table"))
        .await;
    browser
        .script(
            "arguments[0].scrollIntoView({block: 'center'});",
            json!([{ ELEMENT: live }]),
        )
        .await;
    browser
        .screenshot(&artifacts().join("docs-authorized.png"))
        .await;

    assert_eq!(status.trim(), "200", "status cell of the live response");
    assert!(
        curl.contains("Authorization: Bearer "),
        "the call carried the token: {curl}"
    );
    let rows: Value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("response body on the page is JSON ({e}): {body}"));
    assert_eq!(
        rows[0]["emp_name"], EMPLOYEE,
        "response body on the page: {body}"
    );
    let violations = browser.security_messages().await;
    assert!(violations.is_empty(), "CSP violations: {violations:#?}");
}
