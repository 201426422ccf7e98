//! A minimal host application that uses Assent the way a real one would: on "login" it asks
//! whether the user is up to date, sends the user through a consent link when not, and shows
//! the outcome when the user comes back. It speaks for one audience (`ASSENT_AUDIENCE`, default
//! `developers`): its users owe the documents that apply to developers, and nothing that only
//! the SDK's end users owe. The status check and the consent link both name the audience.
//!
//! It also receives Assent's webhooks at `/webhooks/assent`: it checks each delivery's Standard
//! Webhooks signature with the endpoint's secret (`ASSENT_WEBHOOK_SECRET`) and nothing else, refuses
//! a bad or stale one with 401, and prints the event (a real app would, say, unlock the account
//! when `accepted` arrives for a user, or delete its copy of their data on `erased`).
//!
//! ```sh
//! # 1. Assent, allowing this app as a return origin (and, since it runs on 127.0.0.1, as a
//! #    webhook endpoint), and a write key for it:
//! ASSENT_ALLOWED_RETURN_ORIGINS=http://127.0.0.1:3000 ASSENT_WEBHOOK_ALLOW_PRIVATE=1 cargo run --release &
//! KEY=$(cargo run --release -- keys create host-app --scope write --audience developers)
//! # 2. The webhook endpoint; the secret is shown once:
//! cargo run --release -- --webhook-allow-private webhooks add http://127.0.0.1:3000/webhooks/assent --events accepted,declined,withdrawn,erased
//! # 3. This app:
//! ASSENT_KEY=$KEY ASSENT_WEBHOOK_SECRET=whsec_... cargo run --example host_app
//! # 4. Open http://127.0.0.1:3000 and log in as anyone.
//! ```

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use serde_json::{Value, json};

struct Config {
    assent: String,
    key: String,
    me: String,
    /// Whose documents this app asks about (contract §6).
    audience: String,
    /// The webhook endpoint's secret, decoded (`whsec_` + base64); none: webhooks are refused.
    webhook_key: Option<Vec<u8>>,
    /// The latest delivery ids acted on.
    seen: std::sync::Mutex<std::collections::VecDeque<String>>,
}

/// Escapes text for HTML (this example has no template engine; Assent itself uses askama).
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

fn page(body: &str) -> HttpResponse {
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(format!(
        "<!doctype html><meta charset=utf-8><title>Example host app</title>\
         <body style=\"font-family: system-ui; max-width: 40rem; margin: 3rem auto\"><h1>Example host app</h1>{body}</body>"
    ))
}

fn call(config: &Config, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let url = format!("{}{path}", config.assent);
    let auth = format!("Bearer {}", config.key);
    let mut resp = match body {
        Some(b) if method == "POST" => agent.post(&url).header("Authorization", &auth).send_json(b),
        _ => agent.get(&url).header("Authorization", &auth).call(),
    }
    .map_err(|e| format!("Assent did not answer: {e}"))?;
    let status = resp.status();
    let text = resp.body_mut().read_to_string().map_err(|e| e.to_string())?;
    let value: Value = serde_json::from_str(&text).map_err(|e| format!("{status}: {e}"))?;
    if status.is_success() { Ok(value) } else { Err(format!("{status}: {}", value["error"]["message"])) }
}

fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

async fn home() -> HttpResponse {
    page(
        "<form method=post action=/login><label>User id <input name=user required></label> <button>Log in</button></form>",
    )
}

#[derive(Deserialize)]
struct Login {
    user: String,
}

/// On every login: ask Assent; if the user owes an answer, send them through a consent link.
async fn login(config: web::Data<Config>, form: web::Form<Login>) -> HttpResponse {
    let user = form.into_inner().user;
    let answer = web::block(move || -> Result<Option<String>, String> {
        let path = format!("/api/v1/subjects/{}/status?audience={}", encode(&user), encode(&config.audience));
        let status = call(&config, "GET", &path, None)?;
        if status["up_to_date"] == true {
            return Ok(None);
        }
        let link = call(
            &config,
            "POST",
            "/api/v1/consent-links",
            Some(json!({
                "subject": user,
                "return_to": format!("{}/back?user={}", config.me, encode(&user)),
                "ttl_seconds": 900,
                "audience": config.audience,
            })),
        )?;
        Ok(link["url"].as_str().map(str::to_owned))
    })
    .await;
    match answer {
        Ok(Ok(Some(url))) => HttpResponse::SeeOther().insert_header(("Location", url)).finish(),
        Ok(Ok(None)) => {
            page("<p>Welcome back: you are up to date with every agreement.</p><p><a href=/>Log out</a></p>")
        }
        Ok(Err(e)) => page(&format!("<p>Could not check your agreements: {}</p>", escape(&e))),
        Err(e) => page(&format!("<p>{}</p>", escape(&e.to_string()))),
    }
}

#[derive(Deserialize)]
struct Back {
    user: Option<String>,
    outcome: Option<String>,
    receipt: Option<String>,
}

/// Where Assent sends the user back, with the outcome and the receipt ids.
async fn back(q: web::Query<Back>) -> HttpResponse {
    let outcome = q.outcome.as_deref().unwrap_or("unknown");
    let message = match outcome {
        "accepted" => "Thank you: your acceptance is recorded. Welcome in.",
        "declined" => "You declined, so this app cannot let you in. You can review again any time by logging in.",
        "up_to_date" => "You were already up to date.",
        _ => "You are back.",
    };
    page(&format!(
        "<p>{}</p><p>User: <code>{}</code> · outcome <code>{}</code> · receipt <code>{}</code></p><p><a href=/>Home</a></p>",
        escape(message),
        escape(q.user.as_deref().unwrap_or("")),
        escape(outcome),
        escape(q.receipt.as_deref().unwrap_or("-"))
    ))
}

/// How many delivery ids are remembered, to act on each once (a real app keeps them in its
/// database, for longer than Assent retries: a day).
const SEEN_KEPT: usize = 10_000;

/// How far a delivery's timestamp may be from now: an older one is a replay (Standard Webhooks).
const TOLERANCE_SECONDS: u64 = 300;

/// Whether `body` with these headers was signed with `key`: an HMAC-SHA256 over
/// `webhook-id.webhook-timestamp.body`, in base64, among the `v1,` signatures of
/// `webhook-signature` (space-separated; more than one while a secret is being rotated).
fn signed(key: &[u8], req: &HttpRequest, body: &[u8], now: i64) -> Result<(), &'static str> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let (Some(id), Some(timestamp), Some(signatures)) =
        (header("webhook-id"), header("webhook-timestamp"), header("webhook-signature"))
    else {
        return Err("missing webhook-id, webhook-timestamp or webhook-signature");
    };
    let sent: i64 = timestamp.parse().map_err(|_| "webhook-timestamp is not a number of seconds")?;
    if now.abs_diff(sent) > TOLERANCE_SECONDS {
        return Err("webhook-timestamp is too far from now");
    }
    for signature in signatures.split(' ').filter_map(|s| s.strip_prefix("v1,")) {
        let Ok(given) = STANDARD.decode(signature) else { continue };
        let Ok(mut mac) = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key) else { continue };
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        // Compared in constant time.
        if mac.verify_slice(&given).is_ok() {
            return Ok(());
        }
    }
    Err("no signature matches")
}

/// `POST /webhooks/assent`: a delivery from Assent. A 2xx tells Assent it arrived; anything else
/// (or no answer) makes it try again later, so the same `webhook-id` may come more than once.
async fn webhook(config: web::Data<Config>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let Some(key) = &config.webhook_key else {
        return HttpResponse::NotFound().body("no ASSENT_WEBHOOK_SECRET: webhooks are not taken\n");
    };
    if let Err(why) = signed(key, &req, &body, chrono::Utc::now().timestamp()) {
        eprintln!("webhook refused: {why}");
        return HttpResponse::Unauthorized().body(format!("{why}\n"));
    }
    let id = req.headers().get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let Ok(event) = serde_json::from_slice::<Value>(&body) else {
        return HttpResponse::BadRequest().body("not JSON\n");
    };
    // At least once: a delivery whose answer was lost comes again with the same id (and a
    // signed one replayed within the tolerance would too). Act on each id once.
    if let Ok(mut seen) = config.seen.lock() {
        if seen.contains(&id.to_owned()) {
            return HttpResponse::NoContent().finish();
        }
        if seen.len() == SEEN_KEPT {
            seen.pop_front();
        }
        seen.push_back(id.to_owned());
    }
    let data = &event["data"];
    let what = match event["type"].as_str().unwrap_or_default() {
        "published" => format!("{} version {} published", data["document"], data["version"]),
        kind => format!(
            "{kind}: subject {} {} version {} (receipt {}, log index {})",
            data["subject"], data["document"], data["version"], data["event_id"], data["log_index"]
        ),
    };
    println!("webhook {id}: {what}");
    HttpResponse::NoContent().finish()
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let bind = std::env::var("HOST_APP_BIND").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let Ok(key) = std::env::var("ASSENT_KEY") else {
        eprintln!("set ASSENT_KEY to a write key: cargo run --release -- keys create host-app --scope write");
        std::process::exit(2);
    };
    let config = web::Data::new(Config {
        assent: std::env::var("ASSENT_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into()),
        key,
        me: format!("http://{bind}"),
        audience: std::env::var("ASSENT_AUDIENCE").unwrap_or_else(|_| "developers".into()),
        webhook_key: match std::env::var("ASSENT_WEBHOOK_SECRET") {
            Ok(secret) => match secret.strip_prefix("whsec_").map(|k| STANDARD.decode(k)) {
                Some(Ok(key)) => Some(key),
                _ => {
                    eprintln!("ASSENT_WEBHOOK_SECRET is not a secret Assent showed (whsec_ and base64)");
                    std::process::exit(2);
                }
            },
            Err(_) => None,
        },
        seen: Default::default(),
    });
    println!("example host app at http://{bind} (Assent at {})", config.assent);
    if config.webhook_key.is_none() {
        println!("no ASSENT_WEBHOOK_SECRET: /webhooks/assent refuses deliveries");
    }
    HttpServer::new(move || {
        App::new()
            .app_data(config.clone())
            .route("/", web::get().to(home))
            .route("/login", web::post().to(login))
            .route("/back", web::get().to(back))
            .route("/webhooks/assent", web::post().to(webhook))
    })
    .bind(bind)?
    .run()
    .await
}
