//! End to end in a real browser: the built binary serves `/docs` (Swagger UI), and headless
//! Chromium, driven by chromedriver through fantoccini, logs in through "Authorize" (OAuth2
//! password flow) and runs `GET /employees/` with "Try it out".
//!
//! Runs only with `BROWSER_TEST=1` (as CI sets it), and then fails, never skips, when Debian's
//! `chromium` or `chromium-driver` is missing. The screenshot lands in
//! `target/browser/docs-authorized.png` (CI checks that it exists); a failed step leaves
//! `target/browser/docs-failure.png`, and the server and chromedriver logs sit next to them.

use std::{
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use fantoccini::{
    Client, ClientBuilder, Locator, elements::Element, wd::WebDriverCompatibleCommand,
};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

use crate::helpers::{net::listening_addrs, server::Server};

const CHROMIUM: &str = "/usr/bin/chromium";
const ADMIN_PW: &str = "browser-test-root-passphrase";
/// Not in any example of the OpenAPI document, so only the live response can show it.
const EMPLOYEE: &str = "Grace Hopper";
/// The operation's block in Swagger UI: `#operations-{tag}-{operationId}`.
const OP: &str = "#operations-Employees-list_employees";
/// How long one UI step may take: the page polled every [`POLL`] until it is in the state the
/// step waits for.
const STEP: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(100);

fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser");
    std::fs::create_dir_all(&dir).expect("create target/browser");
    dir
}

/// Finds `name` on `PATH`, else in /usr/bin.
fn installed(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The chromedriver to use, or `None` (after saying why) when the test is not asked for.
fn chromedriver_when_asked() -> Option<PathBuf> {
    if std::env::var_os("BROWSER_TEST").is_none_or(|v| v != "1") {
        println!("skipped: BROWSER_TEST=1 is not set");
        return None;
    }
    let driver = installed("chromedriver");
    assert!(
        driver.is_some() && Path::new(CHROMIUM).is_file(),
        "BROWSER_TEST=1 but {} is not installed (apt-get install chromium chromium-driver)",
        if driver.is_none() {
            "chromedriver"
        } else {
            CHROMIUM
        }
    );
    driver
}

/// chromedriver on a port of its choosing, in a process group of its own: on drop the whole
/// group (chromedriver and any browser it started) is killed and chromedriver reaped.
struct Chromedriver {
    child: Child,
    port: u16,
}

impl Chromedriver {
    /// Starts it with `--port=0`, finds the port it bound in the kernel's socket table (its
    /// "started on port N" line sits in a buffer while stdout is a pipe), then polls `/status`
    /// until it says ready; at most 20 s each.
    async fn start(binary: &Path) -> Chromedriver {
        let log = |name: &str| {
            Stdio::from(std::fs::File::create(artifacts().join(name)).expect("log file"))
        };
        let child = Command::new(binary)
            .arg("--port=0")
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log("chromedriver.log"))
            .stderr(log("chromedriver.err"))
            .spawn()
            .expect("chromedriver starts");
        let mut driver = Chromedriver { child, port: 0 };
        let deadline = Instant::now() + Duration::from_secs(20);
        driver.port = loop {
            if let Some(addr) = listening_addrs(driver.child.id()).first() {
                break addr.port();
            }
            if let Ok(Some(exit)) = driver.child.try_wait() {
                panic!("chromedriver exited with {exit}; see target/browser/");
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver listened on no port within 20 s"
            );
            tokio::time::sleep(POLL).await;
        };
        let status = format!("http://127.0.0.1:{}/status", driver.port);
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("HTTP client");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(res) = http.get(&status).send().await
                && let Ok(body) = res.json::<Value>().await
                && body["value"]["ready"] == true
            {
                return driver;
            }
            if let Ok(Some(exit)) = driver.child.try_wait() {
                panic!("chromedriver exited with {exit}; see target/browser/");
            }
            assert!(Instant::now() < deadline, "chromedriver not ready in 20 s");
            tokio::time::sleep(POLL).await;
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        // The group's id is chromedriver's pid (process_group(0)).
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A new browser session: headless Chromium (as root it needs --no-sandbox), a fresh profile,
/// and its console log kept so the CSP check can read it.
async fn new_session(driver: &Chromedriver, profile: &Path) -> Client {
    let capabilities = json!({
        "browserName": "chrome",
        "goog:loggingPrefs": {"browser": "ALL"},
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--window-size=1280,1600",
                format!("--user-data-dir={}", profile.display()),
            ],
        },
    });
    let Value::Object(capabilities) = capabilities else {
        unreachable!()
    };
    ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url())
        .await
        .unwrap_or_else(|e| panic!("new WebDriver session: {e}"))
}

/// chromedriver's log endpoint (`POST /session/{id}/se/log`), which fantoccini has no method
/// for: the browser console, where Chromium reports CSP violations.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (axum::http::Method, Option<String>) {
        (
            axum::http::Method::POST,
            Some(json!({"type": "browser"}).to_string()),
        )
    }
}

/// The browser, step by step: each step polls the page until it is in the state the step
/// needs, for at most [`STEP`], and fails with what the page shows.
struct Page {
    client: Client,
}

impl Page {
    /// The message for a failed step: `what`, the errors Swagger UI shows (e.g. its parameter
    /// validation), and where the failure screenshot went. Never panics itself.
    async fn failure(&self, what: String) -> String {
        let script = "return [...document.querySelectorAll('.errors-wrapper, .modal-ux .errors')]\
                      .map(e => e.innerText).join('\\n')";
        let shown = match self.client.execute(script, vec![]).await {
            Ok(v) => v.as_str().unwrap_or_default().to_owned(),
            Err(e) => format!("(unavailable: {e})"),
        };
        let shot = artifacts().join("docs-failure.png");
        let saved = match self.client.screenshot().await {
            Ok(png) => std::fs::write(&shot, png).is_ok(),
            Err(_) => false,
        };
        let shot = if saved {
            shot.display().to_string()
        } else {
            "not saved".to_owned()
        };
        format!("{what}\nerrors shown on the page: {shown}\nscreenshot: {shot}")
    }

    async fn goto(&self, url: &str) {
        if let Err(e) = self.client.goto(url).await {
            panic!("{}", self.failure(format!("open {url}: {e}")).await);
        }
    }

    /// The element, once it exists.
    async fn wait_for(&self, css: &str) -> Element {
        match self
            .client
            .wait()
            .at_most(STEP)
            .every(POLL)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(element) => element,
            Err(e) => panic!("{}", self.failure(format!("waiting for {css}: {e}")).await),
        }
    }

    /// Clicks the element once it takes the click: it may be covered, not yet interactable or
    /// re-rendered for a while (the modal fades in and out, React replaces nodes).
    async fn click(&self, css: &str) {
        let deadline = Instant::now() + STEP;
        loop {
            let result = match self.client.find(Locator::Css(css)).await {
                Ok(element) => element.click().await,
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => return,
                Err(e) if Instant::now() >= deadline => {
                    panic!("{}", self.failure(format!("clicking {css}: {e}")).await)
                }
                Err(_) => tokio::time::sleep(POLL).await,
            }
        }
    }

    async fn type_into(&self, css: &str, text: &str) {
        let element = self.wait_for(css).await;
        if let Err(e) = element.send_keys(text).await {
            panic!("{}", self.failure(format!("typing into {css}: {e}")).await);
        }
    }

    /// The element's text, once it exists and is not blank.
    async fn wait_text(&self, css: &str) -> String {
        let deadline = Instant::now() + STEP;
        loop {
            if let Ok(element) = self.client.find(Locator::Css(css)).await
                && let Ok(text) = element.text().await
                && !text.trim().is_empty()
            {
                return text;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{}",
                    self.failure(format!("waiting for text in {css}")).await
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Console messages with source "security" (CSP violations). Fails when the log cannot
    /// be read: an empty answer must mean "no violations", not "could not look".
    async fn security_messages(&self) -> Vec<String> {
        let entries = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .unwrap_or_else(|e| panic!("the browser log (POST /se/log) is unavailable: {e}"));
        let Value::Array(entries) = entries else {
            panic!("the browser log is not a list: {entries}");
        };
        entries
            .iter()
            .filter(|e| e["source"] == "security")
            .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

/// Creates the employee the page must show, over the API.
async fn create_employee(server: &Server) {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client");
    let login = http
        .post(server.url("/auth/token"))
        .form(&[("username", "admin"), ("password", ADMIN_PW)])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200, "admin login over the API");
    let token = login.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let created = http
        .post(server.url("/employees/"))
        .bearer_auth(token)
        .json(&json!({"emp_id": 7, "emp_name": EMPLOYEE, "city": "Arlington", "country": "USA", "emp_dob": "1906-12-09"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "employee created");
}

/// What a user does in Swagger UI, and what the page must show.
async fn authorize_and_list_employees(page: Page, base: String) {
    page.goto(&format!("{base}/docs/")).await;
    // The page-level button (the modal's own Authorize does not exist yet).
    page.click(".auth-wrapper button.authorize").await;
    page.type_into("#oauth_username", "admin").await;
    page.type_into("#oauth_password", ADMIN_PW).await;
    // The password flow's own Authorize button: OAuth2 schemes follow the scopes note
    // (`.scope-def`); the API key scheme above has a button of its own.
    page.click(".modal-ux .scope-def ~ div .auth-btn-wrapper button.authorize")
        .await;
    // Logged in: the modal's button turns into "Logout".
    page.wait_for(
        r#".modal-ux .scope-def ~ div .auth-btn-wrapper button[aria-label="Remove authorization"]"#,
    )
    .await;
    page.click(".modal-ux .auth-btn-wrapper button.btn-done")
        .await;

    page.click(&format!("{OP} .opblock-summary-control")).await;
    page.click(&format!("{OP} button.try-out__btn")).await;
    page.click(&format!("{OP} button.execute")).await;

    let status = page
        .wait_text(&format!(
            "{OP} .live-responses-table .response .response-col_status"
        ))
        .await;
    let body = page
        .wait_text(&format!(
            "{OP} .live-responses-table .response-col_description .highlight-code pre"
        ))
        .await;
    let curl = page.wait_text(&format!("{OP} .curl-command")).await;

    // Screenshot first, so the artifact exists even when an assertion below fails.
    let live = page.wait_for(&format!("{OP} .live-responses-table")).await;
    let live = serde_json::to_value(&live).expect("an element reference");
    if let Err(e) = page
        .client
        .execute(
            "arguments[0].scrollIntoView({block: 'center'});",
            vec![live],
        )
        .await
    {
        panic!("{}", page.failure(format!("scrolling: {e}")).await);
    }
    let png = page.client.screenshot().await.expect("screenshot");
    std::fs::write(artifacts().join("docs-authorized.png"), png).expect("write screenshot");

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
    let violations = page.security_messages().await;
    assert!(violations.is_empty(), "CSP violations: {violations:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swagger_ui_authorizes_and_runs_list_employees() {
    let Some(chromedriver) = chromedriver_when_asked() else {
        return;
    };
    let server = Server::builder()
        .arg("serve")
        .envs(&[
            ("ADMIN_PASSWORD", ADMIN_PW),
            ("JWT_SECRET_KEY", &"b".repeat(40)),
            ("RATE_LIMIT_PER_MINUTE", "0"),
        ])
        .tee_to(&artifacts().join("server.log"))
        .start()
        .await;
    create_employee(&server).await;

    let driver = Chromedriver::start(&chromedriver).await;
    let profile = tempfile::tempdir().expect("browser profile directory");
    let client = new_session(&driver, profile.path()).await;
    // The scenario runs as a task of its own, so that whatever happens in it the session is
    // closed (the browser quits) before chromedriver's process group goes.
    let scenario = tokio::spawn(authorize_and_list_employees(
        Page {
            client: client.clone(),
        },
        server.base.clone(),
    ))
    .await;
    let closed = client.close().await;
    drop(driver);
    if let Err(e) = scenario {
        std::panic::resume_unwind(e.into_panic());
    }
    closed.expect("the browser session closes");
}
