/* Small conveniences; every page works without this file. */
(function () {
  "use strict";
  // Ask before the steps that change what decides real applications.
  document.querySelectorAll("button[name=step][value=publish], button[name=step][value=retire]").forEach(function (b) {
    b.addEventListener("click", function (e) {
      if (!window.confirm(b.textContent + "? This changes what the next decision uses.")) e.preventDefault();
    });
  });
})();
