//! What `bench/run-wasm.mjs` calls: load the pages once, then run the
//! chunk path over them as often as it likes, timing each call in JS.

use std::cell::RefCell;

use wasm_bindgen::prelude::*;

use crate::{decode_chunks, run_all, Chunk};

thread_local! {
    static CHUNKS: RefCell<Vec<Chunk>> = const { RefCell::new(Vec::new()) };
    static DIGEST: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Loads a pages file; returns the number of chunks.
#[wasm_bindgen]
pub fn load(bytes: &[u8]) -> Result<u32, JsError> {
    let chunks = decode_chunks(bytes).map_err(|e| JsError::new(&e))?;
    let n = chunks.len() as u32;
    CHUNKS.with(|c| *c.borrow_mut() = chunks);
    Ok(n)
}

/// Runs every loaded chunk once; returns the samples processed.
#[wasm_bindgen]
pub fn run() -> Result<f64, JsError> {
    let (n, digest) = CHUNKS
        .with(|c| run_all(&c.borrow()))
        .map_err(|e| JsError::new(&e))?;
    DIGEST.with(|d| *d.borrow_mut() = digest);
    Ok(n as f64)
}

/// SHA-256 of the blocks of the last [`run`].
#[wasm_bindgen]
pub fn digest() -> String {
    DIGEST.with(|d| d.borrow().clone())
}
