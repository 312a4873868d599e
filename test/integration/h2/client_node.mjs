// SPDX-License-Identifier: BSD-3-Clause
// node's http2 module in the HTTP/2 client matrix (test_h2_clients.py):
// TLS (ALPN h2) and h2c with prior knowledge (http://).
//
// Usage: node client_node.mjs PLAN.json. Each case: a fresh session, the
// request (a body streamed from its file with backpressure, as an
// application would pipe it), then a GET of the follow-up URL on the same
// session if it is still open, else on a new one (reused: false). One JSON
// line per case on stdout.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http2 from 'node:http2';

const plan = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const ca = plan.ca ? fs.readFileSync(plan.ca) : undefined;
const limitMs = plan.timeout * 1000;

function connect(origin) {
    const s = http2.connect(origin, { ca });
    s.on('error', () => {}); // reported through the stream
    s.goaway = null;
    s.on('goaway', (code) => { s.goaway = code; });
    return s;
}

// one request on session s: { status, sha256, time, error }
function request(s, method, url, file, token) {
    return new Promise((resolve) => {
        const u = new URL(url);
        const headers = { ':method': method, ':path': u.pathname + u.search };
        if (token) headers.authorization = 'Bearer ' + token;
        if (file) headers['content-length'] = fs.statSync(file).size;
        const t0 = process.hrtime.bigint();
        const took = () => Number(process.hrtime.bigint() - t0) / 1e9;
        const r = { status: 0, sha256: '', time: 0, error: '' };
        let req;
        try {
            req = s.request(headers, { endStream: !file });
        } catch (e) {
            resolve({ ...r, error: String(e) });
            return;
        }
        const h = crypto.createHash('sha256');
        let done = false;
        const finish = (err) => {
            if (done) return;
            done = true;
            clearTimeout(timer);
            r.time = took();
            if (err) r.error = err;
            resolve(r);
        };
        const timer = setTimeout(() => {
            finish('no complete answer within ' + plan.timeout + ' s');
            req.close(http2.constants.NGHTTP2_CANCEL);
        }, limitMs);
        req.on('response', (hd) => { r.status = hd[':status']; });
        req.on('data', (d) => h.update(d));
        req.on('end', () => { r.sha256 = h.digest('hex'); finish(); });
        req.on('error', (e) => finish(String(e.message || e)));
        req.on('close', () => {
            if (!done) finish('stream closed before the answer ended (rst code ' + req.rstCode + ')');
        });
        if (file) {
            const src = fs.createReadStream(file);
            src.on('error', (e) => finish('reading the body: ' + e));
            // the server may answer before the body is sent: stop feeding a
            // stream that is gone, as pipe() does on 'close'
            src.pipe(req);
        }
    });
}

const out = [];
for (const k of plan.cases) {
    const origin = new URL(k.url).origin;
    const s = connect(origin);
    const r = await request(s, k.method, k.url, k.file, k.auth ? plan.token : '');
    const line = { id: k.id, status: r.status, time: r.time, error: r.error, sha256: r.sha256,
                   proto: 'h2' };
    if (k.followup) {
        let fs2 = s;
        line.reused = !(s.closed || s.destroyed || s.goaway !== null);
        if (!line.reused) fs2 = connect(new URL(k.followup).origin);
        const f = await request(fs2, 'GET', k.followup, null, '');
        Object.assign(line, { followup_status: f.status, followup_time: f.time,
                              followup_error: f.error, followup_sha256: f.sha256 });
        if (s.goaway !== null) line.error += (line.error ? '; ' : '') + 'GOAWAY ' + s.goaway;
        if (fs2 !== s) fs2.destroy();
    }
    s.destroy();
    process.stdout.write(JSON.stringify(line) + '\n');
}
process.exit(0);
