//! Compressed request bodies, inflated for the plugins that read them: the coding
//! named by `Content-Encoding`, decoded from the buffered body under a cap on the
//! inflated size. Decoding stops as soon as the cap is passed, so a zip bomb costs at
//! most the cap in memory and the time to inflate that much.

use async_compression::tokio::bufread::{BrotliDecoder, GzipDecoder, ZlibDecoder, ZstdDecoder};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::{HeaderMap, header};
use tokio_util::io::ReaderStream;

/// A coding a request body may come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestCoding {
    /// `gzip` (and `x-gzip`)
    Gzip,
    /// `deflate`: zlib's format (RFC 1950), as HTTP defines it
    Deflate,
    /// `br`
    Brotli,
    /// `zstd`
    Zstd,
}

impl RequestCoding {
    /// The coding of a request with `headers`: `Ok(None)` without `Content-Encoding`
    /// (or with only `identity`), `Err` with the header's text for anything but one
    /// coding the gateway decodes (unknown ones, and codings applied one over another).
    pub fn of(headers: &HeaderMap) -> Result<Option<Self>, String> {
        let mut codings = Vec::new();
        for value in headers.get_all(header::CONTENT_ENCODING) {
            let text = value
                .to_str()
                .map_err(|_| String::from_utf8_lossy(value.as_bytes()).into_owned())?;
            codings.extend(
                text.split(',')
                    .map(str::trim)
                    .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("identity")),
            );
        }
        let coding = match codings.as_slice() {
            [] => return Ok(None),
            [one] => one.to_ascii_lowercase(),
            _ => return Err(codings.join(", ")),
        };
        match coding.as_str() {
            "gzip" | "x-gzip" => Ok(Some(Self::Gzip)),
            "deflate" => Ok(Some(Self::Deflate)),
            "br" => Ok(Some(Self::Brotli)),
            "zstd" => Ok(Some(Self::Zstd)),
            _ => Err(coding),
        }
    }
}

/// Why a compressed body could not be inflated.
#[derive(Debug, PartialEq, Eq)]
pub enum Inflated {
    /// It inflates to more than the cap.
    TooLarge,
    /// It is not valid in its coding (or is cut short).
    Corrupt,
}

/// `body` decoded from `coding`, refusing more than `cap` inflated bytes.
pub async fn inflate(body: &[u8], coding: RequestCoding, cap: usize) -> Result<Bytes, Inflated> {
    const CHUNK: usize = 16 * 1024;
    type Reader<'a> = std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send + 'a>>;
    let decoder: Reader<'_> = match coding {
        RequestCoding::Gzip => {
            let mut decoder = GzipDecoder::new(body);
            decoder.multiple_members(true);
            Box::pin(decoder)
        }
        RequestCoding::Deflate => Box::pin(ZlibDecoder::new(body)),
        RequestCoding::Brotli => Box::pin(BrotliDecoder::new(body)),
        // HTTP's zstd allows windows up to 8 MiB (RFC 9659); a frame that asks for more
        // is refused rather than given the memory.
        RequestCoding::Zstd => Box::pin(ZstdDecoder::with_params(
            body,
            &[async_compression::zstd::DParameter::window_log_max(23)],
        )),
    };
    let mut chunks = ReaderStream::with_capacity(decoder, CHUNK);
    let mut inflated = BytesMut::new();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|_| Inflated::Corrupt)?;
        if inflated.len() + chunk.len() > cap {
            return Err(Inflated::TooLarge);
        }
        inflated.extend_from_slice(&chunk);
    }
    Ok(inflated.freeze())
}
