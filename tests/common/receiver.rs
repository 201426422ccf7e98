//! A webhook receiver on 127.0.0.1 for the tests: a real TCP server that answers each request as
//! scripted (2xx, an error status, slowly, never, with a reset connection or a redirect) and
//! keeps every request it saw. Raw TCP, because a well-behaved HTTP server cannot misbehave in
//! the ways the tests need.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the receiver answers a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// 200.
    Ok,
    /// This status, with a short body.
    Status(u16),
    /// 200, after this long.
    Slow(Duration),
    /// Nothing, for this long, then the connection is closed.
    Hang(Duration),
    /// The connection is reset (closed with the request unread: the kernel sends RST).
    Reset,
    /// 302 to another address.
    Redirect,
}

/// A request the receiver saw, and how it answered.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Header names in lower case.
    pub headers: HashMap<String, String>,
    pub body: String,
    pub answer: Behaviour,
}

impl Seen {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// Whether it was answered with a 2xx.
    pub fn delivered(&self) -> bool {
        matches!(self.answer, Behaviour::Ok | Behaviour::Slow(_))
            || matches!(self.answer, Behaviour::Status(s) if (200..300).contains(&s))
    }
}

#[derive(Default)]
struct State {
    script: VecDeque<Behaviour>,
    default: Option<Behaviour>,
    seen: Vec<Seen>,
}

#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    pub port: u16,
    state: Arc<Mutex<State>>,
}

impl Receiver {
    /// Listens on a free port of 127.0.0.1, answering `default` unless scripted otherwise.
    pub fn start(default: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the receiver");
        let port = listener.local_addr().expect("address").port();
        let state = Arc::new(Mutex::new(State { default: Some(default), ..Default::default() }));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let state = shared.clone();
                std::thread::spawn(move || serve(stream, &state));
            }
        });
        Self { url: format!("http://127.0.0.1:{port}/hooks"), port, state }
    }

    /// The next requests are answered like this, in turn (then the default again).
    pub fn script(&self, answers: impl IntoIterator<Item = Behaviour>) {
        self.state.lock().unwrap().script.extend(answers);
    }

    pub fn answer_with(&self, default: Behaviour) {
        self.state.lock().unwrap().default = Some(default);
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// Requests answered with a 2xx.
    pub fn delivered(&self) -> Vec<Seen> {
        self.seen().into_iter().filter(Seen::delivered).collect()
    }

    /// Waits until `done` holds of what was seen; panics, showing it, after `within`.
    pub fn wait_until(&self, within: Duration, done: impl Fn(&[Seen]) -> bool) -> Vec<Seen> {
        let start = Instant::now();
        loop {
            let seen = self.seen();
            if done(&seen) {
                return seen;
            }
            if start.elapsed() > within {
                let shown: Vec<String> =
                    seen.iter().map(|s| format!("{} {:?} {}", s.header("webhook-id"), s.answer, s.body)).collect();
                panic!("the receiver did not see what was expected within {within:?}; it saw:\n{}", shown.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Waits until `n` distinct deliveries (by `webhook-id`) were answered with a 2xx.
    pub fn wait_for_delivered(&self, n: usize, within: Duration) -> Vec<Seen> {
        self.wait_until(within, |seen| {
            seen.iter()
                .filter(|s| s.delivered())
                .map(|s| s.header("webhook-id").to_owned())
                .collect::<std::collections::HashSet<_>>()
                .len()
                >= n
        })
        .into_iter()
        .filter(Seen::delivered)
        .collect()
    }
}

fn next_answer(state: &Mutex<State>) -> Behaviour {
    let mut s = state.lock().unwrap();
    s.script.pop_front().or(s.default).unwrap_or(Behaviour::Ok)
}

/// Serves one connection: requests in turn, while the client keeps it open.
fn serve(stream: TcpStream, state: &Mutex<State>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    loop {
        // Wait for a request before deciding how to answer it.
        let mut probe = [0u8; 1];
        match stream.peek(&mut probe) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let answer = next_answer(state);
        if answer == Behaviour::Reset {
            // Dropped with the request unread: the kernel answers with RST. Still counted.
            state.lock().unwrap().seen.push(Seen { headers: HashMap::new(), body: String::new(), answer });
            return;
        }
        let Some((headers, body)) = read_request(&stream) else { return };
        state.lock().unwrap().seen.push(Seen { headers, body, answer });
        let mut out = &stream;
        let written = match answer {
            Behaviour::Ok => out.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"),
            Behaviour::Status(status) => {
                let body = format!("receiver says {status}");
                out.write_all(
                    format!("HTTP/1.1 {status} Scripted\r\ncontent-length: {}\r\n\r\n{body}", body.len()).as_bytes(),
                )
            }
            Behaviour::Slow(wait) => {
                std::thread::sleep(wait);
                out.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            }
            Behaviour::Hang(wait) => {
                std::thread::sleep(wait);
                return;
            }
            Behaviour::Redirect => out.write_all(
                b"HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:9/elsewhere\r\ncontent-length: 0\r\n\r\n",
            ),
            Behaviour::Reset => return,
        };
        if written.is_err() {
            return;
        }
    }
}

/// Reads one request's headers and body (by `content-length`).
fn read_request(stream: &TcpStream) -> Option<(HashMap<String, String>, String)> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    if line.is_empty() {
        return None;
    }
    let mut headers = HashMap::new();
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((k, v)) = trimmed.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let length: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).ok()?;
    // BufReader may have read ahead into the next request; the tests' client sends one request
    // at a time per connection, so nothing is lost.
    Some((headers, String::from_utf8_lossy(&body).into_owned()))
}
