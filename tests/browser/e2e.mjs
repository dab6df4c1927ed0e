// End-to-end test of the web app in Debian's Chromium, driven by
// playwright-core: upload a clip through the page (progress bar), wait for
// it to become ready in the list, open the player, play it, switch quality,
// and check that playback advances and that more than one rendition's
// playlist was loaded; then hover the seek bar and check that the
// storyboard's preview shows. With XTREAM_LONG_CLIP, upload that clip too
// and open it at once: it must start playing from the beginning while it
// still transcodes, and play on to its real end. Saves screenshots of the
// library, the player and the preview.
//
// Usage: [XTREAM_LONG_CLIP=FILE] node tests/browser/e2e.mjs BASE_URL CLIP [ARTIFACT_DIR]
// Run by tests/tests/browser.rs against the whole stack; exits non-zero with
// the reason and the browser's console on failure.

import { chromium } from 'playwright-core';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const [base, clip, artifacts = 'target/test-artifacts'] = process.argv.slice(2);
if (!base || !clip) {
  console.error('usage: node e2e.mjs BASE_URL CLIP [ARTIFACT_DIR]');
  process.exit(2);
}
const READY_TIMEOUT_MS = 180_000;
const PLAY_TIMEOUT_MS = 30_000;

// Flags from this machine's notes: without the background-networking ones
// Chromium keeps dialling out and this closed network refuses it.
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const say = (...parts) => console.log('[e2e]', ...parts);
const browserLog = [];
const pageErrors = [];
/** Rendition names (`360p`) whose variant playlist hls.js requested. */
const playlists = new Set();

mkdirSync(artifacts, { recursive: true });
const profile = mkdtempSync(join(tmpdir(), 'xtream-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.XTREAM_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: CHROMIUM_ARGS,
  viewport: { width: 1280, height: 900 },
});
const page = context.pages()[0] || (await context.newPage());
page.on('console', (message) => browserLog.push(`${message.type()}: ${message.text()}`));
page.on('pageerror', (error) => pageErrors.push(error.message));
page.on('crash', () => pageErrors.push('the page crashed'));
page.on('request', (request) => {
  const match = /\/api\/videos\/[^/]+\/hls\/([^/]+)\/index\.m3u8(\?|$)/.exec(request.url());
  if (match) playlists.add(match[1]);
});

const shot = (name) => page.screenshot({ path: join(artifacts, name), fullPage: true });

try {
  await run();
  if (process.env.XTREAM_LONG_CLIP) await playWhileTranscoding(process.env.XTREAM_LONG_CLIP);
  say('passed; screenshots in', resolve(artifacts));
} catch (error) {
  console.error('[e2e] FAILED:', error.stack || error);
  console.error('[e2e] page errors:', JSON.stringify(pageErrors, null, 1));
  console.error('[e2e] browser console:\n  ' + browserLog.join('\n  '));
  await shot('failure.png').catch(() => {});
  process.exitCode = 1;
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}

async function run() {
  say('opening', base);
  await page.goto(`${base}/`);
  await page.getByLabel(/^API key/).fill(process.env.XTREAM_API_KEY || '');

  // A file that is not a video: the server refuses it, and the page shows
  // the server's own message.
  await page.getByLabel('Video file').setInputFiles({
    name: 'notes.txt',
    mimeType: 'text/plain',
    buffer: Buffer.from('not a video'),
  });
  const [refused] = await Promise.all([
    page.waitForResponse((r) => r.url() === `${base}/api/videos` && r.request().method() === 'POST'),
    page.getByRole('button', { name: 'Upload', exact: true }).click(),
  ]);
  const refusal = await refused.json();
  const shown = page.locator('#upload-status[data-tone="error"]');
  await shown.waitFor();
  if ((await shown.textContent()) !== `Upload failed: ${refusal.error.message}`) {
    throw new Error(`a ${refused.status()} upload showed "${await shown.textContent()}"`);
  }
  say(`a text file was refused (${refused.status()}) with its message shown`);

  // Upload through the form, found by its labels as a screen reader would.
  await page.getByLabel('Video file').setInputFiles(clip);
  await page.getByLabel(/^Title/).fill('Browser test pattern');
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url() === `${base}/api/videos` && r.request().method() === 'POST'),
    page.getByRole('button', { name: 'Upload', exact: true }).click(),
  ]);
  if (response.status() !== 201) throw new Error(`upload answered ${response.status()}: ${await response.text()}`);
  const { id } = await response.json();
  say('uploaded', id);
  await page.getByText('Uploaded “Browser test pattern”').waitFor();
  const progress = await page.locator('#upload-progress').evaluate((bar) => bar.value);
  const progressText = await page.locator('#upload-progress-label').textContent();
  if (progress !== 100 || !/ of .*\(100%\)$/.test(progressText)) {
    throw new Error(`the progress bar ended at ${progress} ("${progressText}")`);
  }

  // The list refreshes by itself until the video is ready (or failed).
  const card = page.locator(`li.video[data-id="${id}"]`);
  await card.locator('.video-status[data-status="ready"], .video-status[data-status="failed"]').waitFor({
    timeout: READY_TIMEOUT_MS,
  });
  const status = await card.getAttribute('data-status');
  if (status !== 'ready') throw new Error(`the video ended ${status}: ${await card.textContent()}`);
  const duration = await card.locator('.duration [aria-hidden="true"]').textContent();
  if (duration !== '0:06') throw new Error(`the card shows duration ${duration}`);
  await page.waitForFunction(
    (selector) => {
      const img = document.querySelector(selector);
      return img && !img.hidden && img.complete && img.naturalWidth > 0;
    },
    `li.video[data-id="${id}"] img`,
    { timeout: PLAY_TIMEOUT_MS },
  );
  say('ready in the list, poster shown');
  await shot('library.png');

  // Every listed video is final now, so the list stops refreshing.
  let listings = 0;
  const countListings = (request) => {
    if (new URL(request.url()).pathname === '/api/videos' && request.method() === 'GET') listings += 1;
  };
  page.on('request', countListings);
  await page.waitForTimeout(4000);
  page.off('request', countListings);
  if (listings > 0) throw new Error(`the list kept refreshing (${listings} requests) with nothing pending`);

  // Open the player from the card, by keyboard.
  await card.getByRole('link').focus();
  await page.keyboard.press('Enter');
  await page.waitForURL(`**/#/watch/${id}`);
  const quality = page.getByLabel('Quality');
  await page.waitForFunction(() => document.querySelectorAll('#quality option').length >= 3, null, {
    timeout: PLAY_TIMEOUT_MS,
  });
  const options = await quality.locator('option').allTextContents();
  say('quality options:', options.join(' | '));

  // Muted, so no autoplay policy stands in the way.
  await page.evaluate(() => {
    const video = document.querySelector('#player');
    video.muted = true;
    return video.play();
  });
  await waitForTime(0.5);
  say('playing; playlists so far:', [...playlists].join(', '));

  // Switch to another rendition with the selector (one not loaded yet if
  // hls.js has not fetched them all by itself): it must play on in it.
  const playing = (await page.locator('#quality-now').textContent()).replace('Playing ', '');
  const values = await quality.locator('option').evaluateAll((all) => all.map((o) => [o.value, o.textContent]));
  const choices = values.filter(([value, text]) => value !== '-1' && text.split(' ')[0] !== playing);
  const other = choices.find(([, text]) => !playlists.has(text.split(' ')[0])) || choices[0];
  if (!other) throw new Error(`no other rendition than ${playing} to switch to: ${JSON.stringify(values)}`);
  await quality.selectOption(other[0]);
  const rung = other[1].split(' ')[0];
  await page.waitForFunction((name) => document.querySelector('#quality-now').textContent === `Playing ${name}`, rung, {
    timeout: PLAY_TIMEOUT_MS,
  });
  if (playlists.size < 2) throw new Error(`only these playlists were loaded: ${[...playlists]}`);
  const switchedAt = await page.evaluate(() => document.querySelector('#player').currentTime);
  await waitForTime(switchedAt + 0.5);
  say(`switched to ${rung}; playlists loaded: ${[...playlists].join(', ')}`);

  await page.evaluate(() => document.querySelector('#player').pause());
  await shot('player.png');

  // Hovering the seek bar previews that moment: the storyboard's tile,
  // cut from its sprite. The index loads on its own, so hover until the
  // picture shows.
  const seekBar = page.locator('#seek-bar');
  const bar = await seekBar.boundingBox();
  if (!bar) throw new Error('the player has no seek bar');
  let picture = null;
  for (let attempt = 0; attempt < 50; attempt += 1) {
    await page.mouse.move(bar.x + bar.width * (0.7 + (attempt % 2) * 0.01), bar.y + bar.height / 2);
    picture = await page.locator('#seek-picture').evaluate((element) => ({
      shown: !element.hidden && !element.closest('#seek-preview').hidden,
      image: element.style.backgroundImage,
      position: element.style.backgroundPosition,
      width: element.getBoundingClientRect().width,
    }));
    if (picture.shown && picture.image) break;
    await page.waitForTimeout(200);
  }
  if (!picture.shown || !picture.image.includes('/storyboard.jpg') || picture.width <= 0) {
    throw new Error(`no storyboard preview over the seek bar: ${JSON.stringify(picture)}`);
  }
  const sprite = await page.evaluate(
    (url) => fetch(url).then((response) => `${response.status} ${response.headers.get('content-type')}`),
    /url\("?([^")]+)"?\)/.exec(picture.image)[1],
  );
  if (sprite !== '200 image/jpeg') throw new Error(`the preview's sprite answered ${sprite}`);
  say(`preview over the seek bar: ${picture.image} at ${picture.position}`);
  await shot('preview.png');

  const csp = browserLog.filter((line) => line.includes('Content Security Policy'));
  if (pageErrors.length || csp.length) throw new Error(`the page reported errors: ${[...pageErrors, ...csp]}`);
}

/**
 * A longer clip, opened as soon as it is uploaded: the player starts while
 * the worker still transcodes it (playlists growing), from the beginning,
 * and plays on to the video's real end.
 */
async function playWhileTranscoding(longClip) {
  const uploaded = await fetch(`${base}/api/videos?filename=long.mp4&title=Still%20transcoding`, {
    method: 'POST',
    headers: { 'content-type': 'video/mp4', authorization: `Bearer ${process.env.XTREAM_API_KEY}` },
    body: readFileSync(longClip),
  });
  if (uploaded.status !== 201) throw new Error(`upload answered ${uploaded.status}: ${await uploaded.text()}`);
  const { id } = await uploaded.json();
  await page.goto(`${base}/#/watch/${id}`);
  await page.waitForFunction(
    () => document.querySelector('#watch-status').textContent.startsWith('Playable while it transcodes'),
    null,
    { timeout: READY_TIMEOUT_MS, polling: 100 },
  );
  // Muted, and fast, so the test does not take the clip's length.
  await page.evaluate(() => {
    const video = document.querySelector('#player');
    video.muted = true;
    video.playbackRate = 4;
    return video.play();
  });
  await waitForTime(0.5);
  const early = await (await fetch(`${base}/api/videos/${id}`)).json();
  const startedAt = await page.evaluate(() => document.querySelector('#player').currentTime);
  if (early.status !== 'transcoding') throw new Error(`playback began only once the video was ${early.status}`);
  if (startedAt > 5) throw new Error(`playback began at ${startedAt} s, not at the start`);
  say(`playing at ${startedAt.toFixed(1)} s while the video is still ${early.status}`);

  await page.waitForFunction(() => document.querySelector('#player').ended, null, {
    timeout: READY_TIMEOUT_MS,
    polling: 250,
  });
  const video = await (await fetch(`${base}/api/videos/${id}`)).json();
  const endedAt = await page.evaluate(() => document.querySelector('#player').currentTime);
  if (Math.abs(endedAt - video.duration_seconds) > 0.5) {
    throw new Error(`playback ended at ${endedAt} s of ${video.duration_seconds} s (${video.status})`);
  }
  say(`played to the end: ${endedAt.toFixed(2)} s of ${video.duration_seconds} s, now ${video.status}`);
}

/** Waits until the video has played past `seconds` (or to its end). */
async function waitForTime(seconds) {
  await page.waitForFunction(
    (t) => {
      const video = document.querySelector('#player');
      return video.currentTime > t || video.ended;
    },
    seconds,
    { timeout: PLAY_TIMEOUT_MS, polling: 100 },
  );
}
