//! A minimal HTTP/1.1 client on a TCP stream, for the harness: any request with its status,
//! headers and body (`http`), and the SSE transport (`SseLink`: the stream read as a chunked
//! response, each POST its own short request).

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpStream, tcp::OwnedReadHalf},
};

/// One thing read from an SSE stream.
pub enum SseEvent {
    /// The `data:` of one event.
    Data(String),
    /// A comment line (keep-alive).
    Comment,
    /// The response ended.
    End,
}

pub struct SseLink {
    addr: String,
    token: String,
    pub session: String,
    reader: BufReader<OwnedReadHalf>,
    /// Kept so the connection stays open for as long as the link.
    _write: tokio::net::tcp::OwnedWriteHalf,
    /// Decoded body bytes not yet consumed.
    body: Vec<u8>,
    ended: bool,
}

/// Sends one HTTP/1.1 request and returns the status, headers (lower-cased) and the reader.
async fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (
    u16,
    String,
    BufReader<OwnedReadHalf>,
    tokio::net::tcp::OwnedWriteHalf,
) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (read, mut write) = stream.into_split();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    write.write_all(head.as_bytes()).await.unwrap();
    write.write_all(body).await.unwrap();
    let mut reader = BufReader::new(read);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).await.unwrap();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let mut headers = String::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).await.unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
        headers.push_str(&line.to_ascii_lowercase());
    }
    (status, headers, reader, write)
}

/// Reads a whole (non-streaming) response body: chunked or with a length.
async fn read_body(headers: &str, reader: &mut BufReader<OwnedReadHalf>) -> String {
    let mut out = Vec::new();
    if headers.contains("transfer-encoding: chunked") {
        while let Some(chunk) = read_chunk(reader).await {
            out.extend(chunk);
        }
    } else if let Some(len) = headers
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
    {
        let mut buf = vec![0; len.trim().parse().unwrap()];
        reader.read_exact(&mut buf).await.unwrap();
        out = buf;
    }
    String::from_utf8(out).unwrap()
}

/// The next chunk of a chunked body, or None at its end.
async fn read_chunk(reader: &mut BufReader<OwnedReadHalf>) -> Option<Vec<u8>> {
    let mut size = String::new();
    if reader.read_line(&mut size).await.ok()? == 0 {
        return None;
    }
    let len = usize::from_str_radix(size.trim(), 16).ok()?;
    let mut chunk = vec![0; len + 2];
    reader.read_exact(&mut chunk).await.ok()?;
    chunk.truncate(len);
    (len > 0).then_some(chunk)
}

impl SseLink {
    /// Opens a stream and reads its `ready` frame's session. Err: the refusal's status and
    /// body.
    pub async fn open(addr: &str, token: &str) -> Result<SseLink, (u16, String)> {
        let auth = format!("Bearer {token}");
        let (status, headers, mut reader, write) = request(
            addr,
            "GET",
            "/v1/sse",
            &[("Authorization", &auth), ("Accept", "text/event-stream")],
            b"",
        )
        .await;
        if status != 200 {
            let body = read_body(&headers, &mut reader).await;
            return Err((status, body));
        }
        assert!(
            headers.contains("content-type: text/event-stream"),
            "{headers}"
        );
        let mut link = SseLink {
            addr: addr.to_owned(),
            token: token.to_owned(),
            session: String::new(),
            reader,
            _write: write,
            body: Vec::new(),
            ended: false,
        };
        // The first frame is `ready`; keep it for the client to read.
        let SseEvent::Data(ready) = link.next_event().await else {
            panic!("the stream ended before ready");
        };
        let v: serde_json::Value = serde_json::from_str(&ready).unwrap();
        link.session = v["session"].as_str().expect("ready has a session").into();
        link.body
            .splice(0..0, format!("data: {ready}\n\n").into_bytes());
        Ok(link)
    }

    async fn line(&mut self) -> Option<String> {
        loop {
            if let Some(i) = self.body.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.body.drain(..=i).collect();
                return Some(String::from_utf8(line[..line.len() - 1].to_vec()).unwrap());
            }
            if self.ended {
                return None;
            }
            match read_chunk(&mut self.reader).await {
                Some(chunk) => self.body.extend(chunk),
                None => self.ended = true,
            }
        }
    }

    /// The next event or comment of the stream.
    pub async fn next_event(&mut self) -> SseEvent {
        let mut data: Option<String> = None;
        loop {
            let Some(line) = self.line().await else {
                return SseEvent::End;
            };
            if line.is_empty() {
                if let Some(data) = data.take() {
                    return SseEvent::Data(data);
                }
                continue;
            }
            if line.starts_with(':') {
                if data.is_none() {
                    // Consume the blank line that ends the comment's block.
                    let _ = self.line().await;
                    return SseEvent::Comment;
                }
                continue;
            }
            let value = line
                .strip_prefix("data:")
                .unwrap_or_else(|| panic!("unexpected SSE line {line:?}"));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => data = Some(value.to_owned()),
            }
        }
    }

    /// POSTs `body` (JSON lines) to this stream's session; returns the status.
    pub async fn post(&self, body: &str) -> u16 {
        post_as(&self.addr, &self.token, &self.session, body)
            .await
            .0
    }
}

/// POSTs `body` to session `session` with `token`; returns the status and the reply body.
pub async fn post_as(addr: &str, token: &str, session: &str, body: &str) -> (u16, String) {
    let auth = format!("Bearer {token}");
    let (status, headers, mut reader, _write) = request(
        addr,
        "POST",
        &format!("/v1/sse/{session}"),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/x-ndjson"),
        ],
        body.as_bytes(),
    )
    .await;
    let body = read_body(&headers, &mut reader).await;
    (status, body)
}

/// Any request, for the refusal tests: status, lower-cased headers, body.
pub async fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, String) {
    let (status, head, mut reader, _write) = request(addr, method, path, headers, body).await;
    let body = read_body(&head, &mut reader).await;
    (status, head, body)
}
