// SPDX-License-Identifier: BSD-3-Clause
// Chromium and Firefox ESR in the HTTP/2 client matrix (test_h2_clients.py),
// launched through test/browser/lib.mjs (puppeteer-core; Firefox over
// WebDriver BiDi) with acceptInsecureCerts for the test's self-signed
// certificate. Browsers speak HTTP/2 over TLS only (no h2c).
//
// Usage: node client_browser.mjs chromium|firefox PLAN.json. One browser for
// the whole plan; per case the page is on the case's origin (/index.html),
// a page script sends the request with fetch() - an upload's body is a File
// chosen in an <input type=file>, read from disk as it goes, as a page
// uploading a file does - then fetches the follow-up URL. One JSON line per
// case on stdout. Reused: Chromium says which connection carried each
// answer (CDP Network.responseReceived connectionId); in Firefox the
// follow-up's Resource Timing has connectStart == connectEnd when it went
// over an open connection.
import fs from 'node:fs';
import { killAll, launchBrowser } from '../../browser/lib.mjs';

const name = process.argv[2];
const plan = JSON.parse(fs.readFileSync(process.argv[3], 'utf8'));
const limitMs = plan.timeout * 1000;

// in the page: the request, then the follow-up; times in seconds
async function inPage(k, token, limitMs) {
    const once = async (method, url, body, headers) => {
        const ctl = new AbortController();
        const timer = setTimeout(() => ctl.abort(), limitMs);
        const t0 = performance.now();
        const r = { status: 0, sha256: '', time: 0, error: '', proto: '' };
        try {
            const resp = await fetch(url, { method, body, headers, signal: ctl.signal,
                                            cache: 'no-store' });
            r.status = resp.status;
            const buf = await resp.arrayBuffer();
            const d = new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
            r.sha256 = Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('');
        } catch (e) {
            r.error = ctl.signal.aborted ? 'no complete answer within ' + limitMs / 1000 + ' s'
                                         : String(e);
        }
        clearTimeout(timer);
        r.time = (performance.now() - t0) / 1000;
        const t = performance.getEntriesByName(new URL(url, location.href).href).pop();
        if (t) {
            r.proto = t.nextHopProtocol;
            r.rtReused = t.connectStart === t.connectEnd;
        }
        return r;
    };
    const headers = {};
    if (token) headers.authorization = 'Bearer ' + token;
    const body = k.file ? document.getElementById('put-file').files[0] : undefined;
    const url = k.url + (k.file ? '' : (k.url.includes('?') ? '&' : '?') + 'n=' + Math.random());
    const a = await once(k.method, url, body, headers);
    const out = { id: k.id, status: a.status, time: a.time, error: a.error, sha256: a.sha256,
                  proto: a.proto, url };
    if (k.followup) {
        const furl = k.followup + '?n=' + Math.random();
        const f = await once('GET', furl, undefined, {});
        Object.assign(out, { followup_status: f.status, followup_time: f.time,
                             followup_error: f.error, followup_sha256: f.sha256,
                             followup_proto: f.proto, reused: f.rtReused, furl });
    }
    return out;
}

let browser;
const stop = setTimeout(() => { killAll(); process.exit(4); },
                        limitMs * (plan.cases.length * 2 + 2) + 60000);
try {
    browser = await launchBrowser(name, { acceptInsecureCerts: true });
    const page = await browser.newPage();
    // Chromium: the connection id of every answer, by URL
    const conn = new Map();
    if (name === 'chromium') {
        const cdp = await page.createCDPSession();
        await cdp.send('Network.enable');
        cdp.on('Network.responseReceived', (e) => {
            conn.set(e.response.url, { id: e.response.connectionId,
                                        reused: e.response.connectionReused,
                                        proto: e.response.protocol });
        });
    }
    let origin = '';
    for (const k of plan.cases) {
        const o = new URL(k.url).origin;
        if (o !== origin) {
            await page.goto(o + '/index.html', { timeout: limitMs });
            origin = o;
        }
        if (k.file) {
            await page.evaluate(() => {
                if (document.getElementById('put-file')) return;
                const input = document.body.appendChild(document.createElement('input'));
                input.type = 'file';
                input.id = 'put-file';
            });
            await (await page.$('#put-file')).uploadFile(k.file);
        }
        let line;
        try {
            line = await page.evaluate(inPage, k, k.auth ? plan.token : '', limitMs);
        } catch (e) {
            line = { id: k.id, status: 0, time: 0, error: 'page: ' + e };
        }
        if (name === 'chromium' && line.furl) {
            await new Promise((r) => setTimeout(r, 100)); // the last CDP events
            const a = conn.get(line.url), f = conn.get(line.furl);
            if (a && f) {
                line.reused = a.id === f.id;
                line.conn_ids = [a.id, f.id];
            } else if (f) {
                line.reused = f.reused;
            }
        }
        delete line.url;
        delete line.furl;
        process.stdout.write(JSON.stringify(line) + '\n');
        if (line.error && line.error.startsWith('page:')) {
            // the page is unusable: a fresh one on the next case
            origin = '';
        }
    }
} finally {
    clearTimeout(stop);
    if (browser) await browser.close().catch(() => {});
    killAll();
}
process.exit(0);
