// SPDX-License-Identifier: BSD-3-Clause
// graced in real browsers (Debian's chromium and firefox-esr, headless, see
// lib.mjs): opens a listing, uploads a file through the page's form and
// checks it on disk byte for byte and in the listing, then uploads a file
// over --max-body-size and checks that the page shows the server's 413 (not
// a failed connection), and the same with a wrong token for 401. early.mjs
// does the early answers at 16 and 64 MiB; this one the small cases and,
// with GRACED_BROWSER_BIG_MB=2048, the 2 GiB drop (a sparse file).
// Usage: node upload.mjs GRACED_BINARY
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
    browsers, check, formUpload, leftovers, note, run, sparseFile, startGraced, tempDir, withBrowser,
} from './lib.mjs';

const TOKEN = 'browsertoken';

run(async (graced) => {
    const dir = tempDir('browser');
    const tokenFile = path.join(dir, 'token');
    fs.writeFileSync(tokenFile, TOKEN + '\n');
    const small = path.join(dir, 'photo é 1.bin');
    const content = randomBytes(300 * 1024);
    fs.writeFileSync(small, content);
    // over the limit: 4 MiB by default
    const big = sparseFile(path.join(dir, 'big.bin'),
                           Number(process.env.GRACED_BROWSER_BIG_MB || 4) * 1024 * 1024);

    for (const name of browsers()) {
        // each browser its own folder: the first one's file must not count for the second
        const up = path.join(dir, 'up-' + name);
        fs.mkdirSync(up);
        const g = await startGraced(graced, ['--root', up, '--upload-dir', up, '--list-dirs',
                                             '--max-body-size', '1M', '--auth-token-file', tokenFile]);
        await withBrowser(name, async (browser) => {
            const page = await browser.newPage();
            page.setDefaultTimeout(30000);
            const resp = await page.goto(g.url);
            check(`${name}: the listing opens (200) with the upload form`,
                  resp.status() === 200 && (await page.$('#upload input[type=file]')) !== null,
                  resp.status());

            let a = await formUpload(page, small, TOKEN);
            note('the page says: ' + a.text.trim().slice(0, 120));
            check(`${name}: form upload: the page shows 201`, a.status === '201' && a.cls === 'ok', a);
            const stored = path.join(up, 'photo é 1.bin');
            check(`${name}: form upload: stored byte for byte`,
                  fs.existsSync(stored) && fs.readFileSync(stored).equals(content),
                  fs.readdirSync(up));

            await page.reload();
            const names = await page.$$eval('table a', (els) => els.map((e) => e.textContent));
            check(`${name}: the listing shows the uploaded file`, names.includes('photo é 1.bin'), names);

            a = await formUpload(page, big, TOKEN);
            note('the page says: ' + a.text.trim().slice(0, 120));
            check(`${name}: over --max-body-size: the page shows the 413 answer, not a failed connection`,
                  a.status === '413' && /413/.test(a.text) && a.cls === 'err', a);
            check(`${name}: the refused file is not stored`, !fs.existsSync(path.join(up, 'big.bin')),
                  fs.readdirSync(up));

            a = await formUpload(page, small, 'wrong');
            note('the page says: ' + a.text.trim().slice(0, 120));
            check(`${name}: a wrong token: the page shows the 401 answer`,
                  a.status === '401' && /401/.test(a.text), a);

            check(`${name}: no temporary files left`, leftovers(up).length === 0, leftovers(up));
        });
        check(`${name}: graced: SIGTERM exits 0`, (await g.stop()) === 0);
    }
}, { limitMs: 120000 });
