// SPDX-License-Identifier: BSD-3-Clause
// Shared by the browser tests (upload.mjs, early.mjs, ...): the checks and
// their summary line, a bound on the whole run, graced started on a free
// loopback port, and the browsers - Debian's chromium (CDP) and firefox-esr
// (WebDriver BiDi) - launched headless on a fresh profile through
// puppeteer-core. Every process started here is killed by its PID at the end.
//
// A test file is:
//   import { run, check, startGraced, withBrowser, browsers } from './lib.mjs';
//   run(async (graced) => {
//       const g = await startGraced(graced, ['--root', dir, '--list-dirs']);
//       for (const name of browsers())
//           await withBrowser(name, async (browser) => { ... check(...) ... });
//       check('graced: SIGTERM exits 0', (await g.stop()) === 0);
//   }, { limitMs: 90000 });
// run() prints 'N passed, N failed' and exits 1 on a failure, on no check at
// all, or past the limit. A new test/browser/NAME.mjs goes into Makefile.am's
// TESTS and EXTRA_DIST (test_browser.sh runs it); alone:
//   cd build && make check TESTS=test/browser/NAME.mjs
// Cross-origin tests (redirects to another site, a page of another origin):
// withBrowser(name, fn, { anyHostIsLoopback: true }) makes every host name
// resolve to 127.0.0.1, so http://evil.test:PORT/ is a local listener.
//
// Versions: puppeteer-core 24 drives Firefox 129 and later over BiDi; Debian
// 12 ships firefox-esr 140 (bookworm) and 153 (bookworm-security): both
// pass these tests (140 tried by hand, FIREFOX= its unpacked package).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import puppeteer from 'puppeteer-core';

const procs = [];
const tmpdirs = [];
let passed = 0, failed = 0;

/** Count and print one check; detail is shown only when it fails. */
export function check(name, cond, detail) {
    if (cond) passed++; else failed++;
    console.log((cond ? 'ok   ' : 'FAIL ') + name + (cond ? '' : ': ' + JSON.stringify(detail)));
    return cond;
}

/** A line for the log only, indented under the checks. */
export function note(text) {
    console.log('     ' + text);
}

/** Kill every process started through this module (by PID). */
export function killAll() {
    for (const p of procs)
        if (p && p.exitCode === null && p.signalCode === null) {
            try { process.kill(p.pid, 'SIGKILL'); } catch (e) { /* gone */ }
        }
}

/** A fresh temporary folder, removed when run() ends. */
export function tempDir(tag) {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), `graced-${tag}.${process.pid}.`));
    tmpdirs.push(d);
    return d;
}

/** A file of `bytes` bytes that takes no disk (sparse, after 1 KiB of 'a'). */
export function sparseFile(file, bytes) {
    fs.writeFileSync(file, Buffer.alloc(Math.min(1024, bytes), 0x61));
    fs.truncateSync(file, bytes);
    return file;
}

/**
 * Start graced on 127.0.0.1 with a free port; resolves when it prints its
 * address. Returns { proc, port, url, stop() }; stop() sends SIGTERM and
 * resolves to the exit code.
 */
export function startGraced(binary, args) {
    return new Promise((resolve, reject) => {
        const p = spawn(binary, ['--listen', '127.0.0.1:0', ...args],
                        { stdio: ['ignore', 'pipe', 'inherit'] });
        procs.push(p);
        let out = '';
        p.stdout.on('data', (d) => {
            out += d;
            const m = out.match(/:(\d+)\/\n/);
            if (m) {
                const port = Number(m[1]);
                resolve({ proc: p, port, url: `http://127.0.0.1:${port}/`,
                          stop: () => stopProc(p) });
            }
        });
        p.on('exit', (code) => reject(new Error('graced exited ' + code)));
    });
}

function stopProc(p) {
    if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve(p.exitCode);
    const done = new Promise((r) => p.once('exit', (code) => r(code)));
    process.kill(p.pid, 'SIGTERM');
    return done;
}

// Firefox on a machine whose network is closed: nothing may leave for the
// internet (updates, telemetry, captive portal and connectivity checks, safe
// browsing lists, remote settings, push, DNS over HTTPS, prefetching), or it
// may wait on it; puppeteer's own defaults (a profile for testing) are kept.
export const FIREFOX_PREFS = {
    'app.update.auto': false,
    'app.update.enabled': false,
    'app.normandy.enabled': false,
    'app.shield.optoutstudies.enabled': false,
    'browser.discovery.enabled': false,
    'browser.ml.enable': false,
    'browser.newtabpage.activity-stream.feeds.telemetry': false,
    'browser.newtabpage.activity-stream.telemetry': false,
    'browser.ping-centre.telemetry': false,
    'browser.region.network.url': '',
    'browser.region.update.enabled': false,
    'browser.safebrowsing.downloads.remote.enabled': false,
    'browser.safebrowsing.provider.google.updateURL': '',
    'browser.safebrowsing.provider.google4.updateURL': '',
    'browser.safebrowsing.provider.mozilla.updateURL': '',
    'browser.topsites.contile.enabled': false,
    'browser.translations.enable': false,
    'captivedetect.canonicalURL': '',
    'datareporting.usage.uploadEnabled': false,
    'dom.push.connection.enabled': false,
    'dom.push.serverURL': '',
    'extensions.blocklist.enabled': false,
    'extensions.systemAddon.update.enabled': false,
    'extensions.systemAddon.update.url': '',
    'geo.provider.network.url': '',
    'identity.fxaccounts.enabled': false,
    'media.gmp-gmpopenh264.enabled': false,
    'messaging-system.rsexperimentloader.enabled': false,
    'network.captive-portal-service.enabled': false,
    'network.connectivity-service.enabled': false,
    'network.dns.disablePrefetch': true,
    'network.predictor.enabled': false,
    'network.prefetch-next': false,
    'network.proxy.type': 0,                  // direct, whatever the environment says
    'network.trr.mode': 5,                    // no DNS over HTTPS
    'security.OCSP.enabled': 0,
    'security.remote_settings.crlite_filters.enabled': false,
    'security.remote_settings.intermediates.enabled': false,
    // remote settings: with MOZ_DISABLE_NONLOCAL_CONNECTIONS (see launchBrowser)
    // a release build accepts this server, and this one means "fetch nothing"
    'services.settings.server': 'data:,#remote-settings-dummy/v1',
    'toolkit.telemetry.archive.enabled': false,
    'toolkit.telemetry.enabled': false,
    'toolkit.telemetry.server': '',
    'toolkit.telemetry.unified': false,
};

// name -> how to launch it; CHROMIUM / FIREFOX override the binaries
const BROWSERS = {
    chromium: {
        executablePath: () => process.env.CHROMIUM || '/usr/bin/chromium',
        options: {
            browser: 'chrome',
            // root in a container: no user namespaces for chromium's sandbox
            args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
                   '--no-proxy-server', '--no-first-run', '--disable-background-networking',
                   '--disable-component-update', '--disable-sync'],
            // no name but localhost resolves (it looks up accounts.google.com)
            resolve: 'MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1',
        },
    },
    firefox: {
        executablePath: () => process.env.FIREFOX || '/usr/bin/firefox-esr',
        options: {
            browser: 'firefox',
            protocol: 'webDriverBiDi',
            extraPrefsFirefox: FIREFOX_PREFS,
        },
    },
};

/**
 * The browsers to test in: GRACED_BROWSERS (e.g. "firefox"), else both.
 * @return names accepted by launchBrowser()
 */
export function browsers() {
    const want = (process.env.GRACED_BROWSERS || 'chromium firefox').split(/[\s,]+/).filter(Boolean);
    for (const b of want)
        if (!BROWSERS[b]) throw new Error(`GRACED_BROWSERS: no browser "${b}" (chromium, firefox)`);
    return want;
}

/** The binary launchBrowser(name) would start. */
export function browserPath(name) {
    return BROWSERS[name].executablePath();
}

/**
 * Launch browser `name` headless on a fresh temporary profile (removed by
 * puppeteer on close). The caller closes it; its process is also killed by
 * PID when run() ends.
 * opts.anyHostIsLoopback: every host name resolves to 127.0.0.1, so a page
 * may go to http://evil.test:PORT/ (another origin, served by a local
 * listener): for tests of redirects and cross-origin behaviour.
 * opts.acceptInsecureCerts: accept any certificate (a self-signed one made
 * by the test): Chromium over CDP, Firefox as the BiDi session capability.
 */
export async function launchBrowser(name, opts = {}) {
    const b = BROWSERS[name];
    const { resolve, ...options } = b.options;
    if (name === 'firefox') {
        if (opts.anyHostIsLoopback)
            options.extraPrefsFirefox = { ...options.extraPrefsFirefox,
                                          'network.dns.forceResolve': '127.0.0.1' };
    } else {
        const rules = opts.anyHostIsLoopback ? 'MAP * 127.0.0.1' : resolve;
        options.args = [...options.args, '--host-resolver-rules=' + rules];
    }
    // Firefox: its own temporary HOME, so nothing of the machine's user is read
    const env = { ...process.env };
    if (name === 'firefox') {
        env.HOME = tempDir('firefox-home');
        // Firefox refuses any connection to an address that is not loopback
        // (the switch its own test harness uses)
        env.MOZ_DISABLE_NONLOCAL_CONNECTIONS = '1';
    }
    const browser = await puppeteer.launch({
        ...options,
        executablePath: b.executablePath(),
        headless: true,
        env,
        timeout: 60000,
        protocolTimeout: 120000,
        acceptInsecureCerts: !!opts.acceptInsecureCerts,
    });
    procs.push(browser.process());
    return browser;
}

/**
 * Run fn(browser) in a freshly launched browser `name` (opts as for
 * launchBrowser), closing it after, also when fn throws.
 */
export async function withBrowser(name, fn, opts = {}) {
    const browser = await launchBrowser(name, opts);
    try {
        return await fn(browser);
    } finally {
        await browser.close().catch(() => {});
        const p = browser.process();
        if (p && p.exitCode === null && p.signalCode === null) {
            try { process.kill(p.pid, 'SIGKILL'); } catch (e) { /* gone */ }
        }
    }
}

/**
 * Upload `file` through graced's listing form (its script posts with XHR
 * and shows the answer in #answer), with `token` in the token field if
 * given; waits for the page to show an answer.
 * @return { status, text, cls } as the page shows them; status '0' when the
 *         page saw the connection fail before an answer
 */
export async function formUpload(page, file, token, timeout = 60000) {
    const input = await page.$('#upload input[type=file]');
    await input.uploadFile(file);
    if (token !== undefined)
        await page.$eval('#upload input[name=token]', (el, t) => { el.value = t; }, token);
    await page.$eval('#answer', (el) => { delete el.dataset.status; el.textContent = ''; });
    await page.click('#upload button[type=submit]');
    await page.waitForSelector('#answer[data-status]', { timeout });
    return page.$eval('#answer', (el) => ({ status: el.dataset.status, text: el.textContent,
                                            cls: el.className }));
}

/**
 * From the page (same origin as graced), PUT the local `file` to `target`
 * with fetch() or XMLHttpRequest (`how`: 'fetch' or 'xhr'), as a page
 * uploading a chosen file does: the file is chosen in an <input type=file>
 * the page gets for it, and sent as that File (read from disk as it goes,
 * never whole in memory). A Bearer `token` if given; the answer is shown in
 * the page as the form does.
 * @return { status, text } as the page shows them; status '0' when the
 *         request failed before an answer
 */
export async function pagePut(page, how, target, file, token) {
    await page.evaluate(() => {
        if (document.getElementById('put-file')) return;
        const input = document.body.appendChild(document.createElement('input'));
        input.type = 'file';
        input.id = 'put-file';
        const a = document.body.appendChild(document.createElement('p'));
        a.id = 'put-answer';
    });
    await (await page.$('#put-file')).uploadFile(file);
    return page.evaluate(async (how, target, token) => {
        const body = document.getElementById('put-file').files[0];
        const headers = token ? { Authorization: 'Bearer ' + token } : {};
        let status, text;
        if (how === 'fetch') {
            try {
                const r = await fetch(target, { method: 'PUT', body, headers });
                status = r.status;
                text = r.status + ' ' + r.statusText + ': ' + await r.text();
            } catch (e) {
                status = 0;
                text = 'the connection failed before an answer came: ' + e;
            }
        } else {
            [status, text] = await new Promise((resolve) => {
                const x = new XMLHttpRequest();
                x.open('PUT', target);
                for (const h in headers) x.setRequestHeader(h, headers[h]);
                x.onload = () => resolve([x.status, x.status + ' ' + x.statusText + ': ' +
                                                    x.responseText]);
                x.onerror = () => resolve([0, 'the connection failed before an answer came']);
                x.send(body);
            });
        }
        const a = document.getElementById('put-answer');
        a.dataset.status = status;
        a.textContent = text;
        return { status: String(a.dataset.status), text: a.textContent };
    }, how, target, token);
}

/**
 * Run a browser test: main(gracedBinary) with the whole run bounded by
 * limitMs (GRACED_BROWSER_LIMIT_MS overrides); prints the summary line,
 * kills what was started, removes the temporary folders and exits.
 */
export function run(main, { limitMs = 90000 } = {}) {
    const limit = Number(process.env.GRACED_BROWSER_LIMIT_MS || limitMs);
    const finish = (code) => {
        killAll();
        for (const d of tmpdirs) fs.rmSync(d, { recursive: true, force: true });
        console.log(`${passed} passed, ${failed} failed`);
        process.exit(code);
    };
    const deadline = setTimeout(() => {
        check('the browser test ended within ' + limit / 1000 + ' s', false, 'still running');
        finish(1);
    }, limit);
    Promise.resolve().then(() => main(process.argv[2])).catch((e) => {
        check('the browser test ran', false, String(e && e.stack || e));
    }).finally(() => {
        clearTimeout(deadline);
        finish(failed || passed === 0 ? 1 : 0);
    });
}
