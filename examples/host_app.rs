//! A minimal host application that uses Assent the way a real one would: on "login" it asks
//! whether the user is up to date, sends the user through a consent link when not, and shows
//! the outcome when the user comes back. It speaks for one audience (`ASSENT_AUDIENCE`, default
//! `developers`): its users owe the documents that apply to developers, and nothing that only
//! the SDK's end users owe. The status check and the consent link both name the audience.
//!
//! ```sh
//! # 1. Assent, allowing this app as a return origin, and a write key for it:
//! ASSENT_ALLOWED_RETURN_ORIGINS=http://127.0.0.1:3000 cargo run --release &
//! KEY=$(cargo run --release -- keys create host-app --scope write --audience developers)
//! # 2. This app:
//! ASSENT_KEY=$KEY cargo run --example host_app
//! # 3. Open http://127.0.0.1:3000 and log in as anyone.
//! ```

use actix_web::{App, HttpResponse, HttpServer, web};
use serde::Deserialize;
use serde_json::{Value, json};

struct Config {
    assent: String,
    key: String,
    me: String,
    /// Whose documents this app asks about (contract §6).
    audience: String,
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
    });
    println!("example host app at http://{bind} (Assent at {})", config.assent);
    HttpServer::new(move || {
        App::new()
            .app_data(config.clone())
            .route("/", web::get().to(home))
            .route("/login", web::post().to(login))
            .route("/back", web::get().to(back))
    })
    .bind(bind)?
    .run()
    .await
}
