//! Reading a provider's answer with a bound on its size: a provider (or a proxy in front of it)
//! that answers far more than any page holds costs an error, not the daemon's memory. A lone
//! UTF-16 surrogate escape in the answer is replaced on the way ([`crate::surrogates`]).

/// Why an answer's body was not read whole.
#[derive(Debug)]
pub enum BodyError {
    /// The body is larger than the bound (in bytes).
    TooLarge(usize),
    /// Reading it failed.
    Read(reqwest::Error),
}

/// The whole body of `response`, refused as soon as it is seen to exceed `max` bytes (its
/// `Content-Length`, or the bytes read so far), its lone surrogate escapes replaced by `\ufffd`.
///
/// # Errors
///
/// [`BodyError::TooLarge`] past `max`; [`BodyError::Read`] when the body cannot be read.
pub async fn read_capped(
    mut response: reqwest::Response,
    max: usize,
) -> Result<bytes::Bytes, BodyError> {
    if response
        .content_length()
        .is_some_and(|len| len > max as u64)
    {
        return Err(BodyError::TooLarge(max));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Read)? {
        if body.len() + chunk.len() > max {
            return Err(BodyError::TooLarge(max));
        }
        body.extend_from_slice(&chunk);
    }
    crate::surrogates::repair(&mut body);
    Ok(body.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server answering every connection with `declared` (a Content-Length, or chunked when
    /// `None`) and `sent` bytes of body.
    async fn server(declared: Option<usize>, sent: usize) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut request = [0u8; 1024];
                    let _ = socket.read(&mut request).await;
                    let head = match declared {
                        Some(n) => format!("HTTP/1.1 200 OK\r\ncontent-length: {n}\r\n\r\n"),
                        None => "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".into(),
                    };
                    if socket.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    let block = vec![b'x'; 64 * 1024];
                    let mut left = sent;
                    while left > 0 {
                        let n = left.min(block.len());
                        let out = match declared {
                            Some(_) => block[..n].to_vec(),
                            None => {
                                [format!("{n:x}\r\n").as_bytes(), &block[..n], b"\r\n"].concat()
                            }
                        };
                        if socket.write_all(&out).await.is_err() {
                            return;
                        }
                        left -= n;
                    }
                    if declared.is_none() {
                        let _ = socket.write_all(b"0\r\n\r\n").await;
                    }
                });
            }
        });
        format!("http://{addr}/")
    }

    #[tokio::test]
    async fn an_answer_past_the_bound_is_refused_without_being_read_whole() {
        let client = reqwest::Client::new();
        // Declared too large: refused before any of the body is read.
        let url = server(Some(1 << 30), 0).await;
        let response = client.get(&url).send().await.unwrap();
        assert!(matches!(
            read_capped(response, 1 << 20).await,
            Err(BodyError::TooLarge(_))
        ));
        // Chunked and endless: refused once past the bound.
        let url = server(None, 64 << 20).await;
        let response = client.get(&url).send().await.unwrap();
        assert!(matches!(
            read_capped(response, 1 << 20).await,
            Err(BodyError::TooLarge(_))
        ));
        // Within the bound: read whole.
        let url = server(Some(300_000), 300_000).await;
        let response = client.get(&url).send().await.unwrap();
        assert_eq!(read_capped(response, 1 << 20).await.unwrap().len(), 300_000);
    }
}
