// SPDX-License-Identifier: BSD-3-Clause
// tus-js-client (test/tus/node_modules, pinned by package-lock.json) as a
// real client of graced's resumable uploads, driven by
// test/integration/test_graced_resumable.py:
//   node tus_client.mjs '{"endpoint": "http://127.0.0.1:PORT/dir/", "file": "/tmp/x",
//                         "name": "x.bin", "protocol": "tus-v1"|"ietf-draft-05"|...,
//                         "pauseAt": 0.4, "headers": {...}, "ca": "/path/cert.pem"}'
// The file's bytes go out through a reader that stops once pauseAt of them
// has been handed to the request and says so ("PAUSED <bytes> <url>"), then
// waits for a line on stdin: "ABORT" aborts the request (tus-js-client's
// abort(): the connection is dropped mid-PATCH), and after the next line
// ("GO") the same Upload starts again, which asks the server for its offset
// (HEAD) and sends the rest from there. Every request and answer is printed
// ("REQ"/"RES" lines, JSON), then "DONE <url>" or "ERROR <message>".
import fs from 'node:fs';
import readline from 'node:readline';
import { Readable } from 'node:stream';
import { Upload, DefaultHttpStack } from 'tus-js-client';

const cfg = JSON.parse(process.argv[2]);
const data = fs.readFileSync(cfg.file);
const pauseAt = Math.floor(data.length * (cfg.pauseAt ?? 0));
let paused = false;   // the pause happens once
let release = null;   // resolves the pause
const lines = readline.createInterface({ input: process.stdin });
const waiting = [];
lines.on('line', (l) => { const w = waiting.shift(); if (w) w(l.trim()); });
const nextLine = () => new Promise((resolve) => waiting.push(resolve));

function out(kind, obj) {
    process.stdout.write(kind + ' ' + (typeof obj === 'string' ? obj : JSON.stringify(obj)) + '\n');
}

// A slice as a stream of 64 KiB pieces; the first slice that crosses
// pauseAt stops there until released.
function sliceStream(start, end) {
    let pos = start;
    const piece = (st) => {
        if (pos >= end) { st.push(null); return; }
        const stop = Math.min(end, pos + 65536, !paused && pauseAt > pos ? pauseAt : end);
        st.push(data.subarray(pos, stop));
        pos = stop;
    };
    const s = new Readable({
        read() {
            if (!paused && pauseAt > 0 && pos >= pauseAt && pos < end) {
                paused = true;
                out('PAUSED', `${pos} ${upload.url}`);
                new Promise((r) => { release = r; }).then(() => { if (!s.destroyed) piece(s); });
                return;
            }
            piece(this);
        },
    });
    s.size = end - start;
    return s;
}

const reader = {
    openFile() {
        return Promise.resolve({
            size: data.length,
            slice(start, end) {
                end = Math.min(end, data.length);
                return Promise.resolve({ value: sliceStream(start, end), done: end >= data.length });
            },
            close() {},
        });
    },
};

let upload;
const finished = new Promise((resolve) => {
    upload = new Upload(data, {
        endpoint: cfg.endpoint,
        protocol: cfg.protocol,
        metadata: { filename: cfg.name, filetype: 'application/octet-stream' },
        headers: cfg.headers || {},
        chunkSize: cfg.chunkSize || Infinity,
        retryDelays: [200, 500, 1000, 2000, 4000],
        fileReader: reader,
        // the given certificate is the only one trusted; its name (localhost)
        // is not what is tested here
        httpStack: new DefaultHttpStack(cfg.ca ? { ca: fs.readFileSync(cfg.ca),
                                                   checkServerIdentity: () => undefined } : {}),
        onBeforeRequest(req) {
            out('REQ', { method: req.getMethod(), url: req.getURL(),
                         offset: req.getHeader('Upload-Offset') ?? null,
                         complete: req.getHeader('Upload-Complete') ?? null });
        },
        onAfterResponse(req, res) {
            out('RES', { method: req.getMethod(), status: res.getStatus(),
                         offset: res.getHeader('Upload-Offset') ?? null,
                         location: res.getHeader('Location') ?? null });
        },
        onError(err) { resolve('ERROR ' + String(err).replace(/\s+/g, ' ')); },
        onSuccess() { resolve('DONE ' + upload.url); },
    });
});

const limit = setTimeout(() => { out('ERROR', 'no end within 120 s'); process.exit(1); }, 120000);
upload.start();
// the upload may end (an error) before it pauses: then no line is awaited
if (pauseAt > 0 && (await Promise.race([nextLine(), finished.then(() => null)])) === 'ABORT') {
    await upload.abort();
    out('ABORTED', upload.url);
    await nextLine(); // GO
    release();
    upload.start();
}
out('END', await finished);
clearTimeout(limit);
lines.close();
