// Entry point. The app is one page; the URL fragment picks the view
// (`#/` the library, `#/watch/{id}` the player), so the web component only
// ever serves index.html and every player link can be bookmarked or shared.

import { Library } from './library.js';
import { Player } from './player.js';

const library = new Library(document.getElementById('library'));
const player = new Player(document.getElementById('watch'));

function route({ focus }) {
  const watch = /^#\/watch\/([^/?#]+)$/.exec(location.hash);
  if (watch) {
    library.hide();
    player.show(decodeURIComponent(watch[1]), { focus });
  } else {
    player.hide();
    library.show({ focus });
  }
}

// After a navigation inside the app, focus moves to the new view's heading
// so keyboard and screen-reader users land where the content changed; on
// first load the browser's own start of page is right.
window.addEventListener('hashchange', () => route({ focus: true }));
route({ focus: false });
