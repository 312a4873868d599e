// SPDX-License-Identifier: BSD-3-Clause
// The README's screenshots of graced's page (not a test; run by hand after
// the page changes):
//   node test/browser/shot.mjs build/src/graced/graced docs
// writes docs/page.png (Chromium, 1000 px, light: a folder with files and
// folders, alice logged in, one upload stored) and docs/page-390-dark.png
// (390 px, dark).
// page.mjs checks the look itself (overflow, contrast, wrapping).
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { run, check, startGraced, tempDir, withBrowser } from './lib.mjs';

run(async (graced) => {
    const out = path.resolve(process.argv[3] || 'docs');
    const root = tempDir('shot');
    fs.mkdirSync(path.join(root, 'photos', '2026'), { recursive: true });
    fs.mkdirSync(path.join(root, 'papers'));
    fs.writeFileSync(path.join(root, 'notes.txt'), 'graced\n');
    fs.writeFileSync(path.join(root, 'report-2026-final-final (2).pdf'), randomBytes(180000));
    fs.writeFileSync(path.join(root, 'holiday.mp4'), randomBytes(2500000));
    fs.writeFileSync(path.join(root, 'photos', 'beach.jpg'), randomBytes(900000));
    const up = path.join(tempDir('shot-src'), 'slides.pdf');
    fs.writeFileSync(up, randomBytes(1300000));
    const users = path.join(tempDir('shot-users'), 'users');
    const hash = execFileSync('openssl', ['passwd', '-6', 'alice pw']).toString().trim();
    fs.writeFileSync(users, `alice:${hash}:rw\n`);
    const g = await startGraced(graced, ['--root', root, '--upload-dir', root, '--users-file', users]);
    for (const [file, width, dark] of [['page.png', 1000, false], ['page-390-dark.png', 390, true]]) {
        await withBrowser('chromium', async (browser) => {
            const page = await browser.newPage();
            await page.setViewport({ width, height: dark ? 760 : 560 });
            await page.emulateMediaFeatures([{ name: 'prefers-color-scheme',
                                               value: dark ? 'dark' : 'light' }]);
            await page.goto(g.url + '?login');
            await page.type('#user', 'alice');
            await page.type('#password', 'alice pw');
            await Promise.all([page.waitForNavigation(),
                               page.click('form.login button[type=submit]')]);
            await (await page.$('#upload input[type=file]')).uploadFile(up);
            await page.click('#upload button[type=submit]');
            await page.waitForFunction(() => /stored/.test(
                (document.querySelector('#uploads li:last-child .st') || {}).textContent || ''));
            await page.screenshot({ path: path.join(out, file) });
            check(`${file}: written`, fs.statSync(path.join(out, file)).size > 1000);
        }, { dark });
    }
    check('graced: SIGTERM exits 0', (await g.stop()) === 0);
});
