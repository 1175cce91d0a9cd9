// Progressive enhancement only: every form below also works as a plain POST.
// Feed reactions post in the background and swap in the re-ranked feed, so the
// effect of a like shows without a page load; new arrivals are highlighted.
(function () {
  "use strict";

  function idsIn(root) {
    return Array.prototype.map.call(root.querySelectorAll("[data-feed] > .card"), function (el) {
      return el.getAttribute("data-id");
    });
  }

  function announce(text) {
    var status = document.querySelector("[data-feed-status]"); // outside the swapped part
    if (status) { status.textContent = text; }
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.matches || !form.matches("form[data-react]")) { return; }
    var body = document.getElementById("feed-body");
    if (!body || !window.fetch) { return; } // the item page: a normal post and redirect
    event.preventDefault();
    var data = new FormData(form);
    var button = event.submitter;
    if (button && button.name) { data.set(button.name, button.value); }
    var before = idsIn(body);
    var title = form.closest(".card").querySelector(".card-title").textContent.trim();
    var words = { like: "Liked", dislike: "Disliked", watched: "Marked as watched", skip: "Skipped" };
    var label = (button && words[button.value]) || "Saved";
    form.classList.add("is-busy");
    fetch(form.getAttribute("action"), { // not form.action: the buttons are named "action"
      method: "POST",
      body: data,
      headers: { "X-Requested-With": "fetch" },
      credentials: "same-origin"
    }).then(function (response) {
      if (!response.ok) { throw new Error("status " + response.status); }
      return response.text();
    }).then(function (html) {
      var template = document.createElement("template");
      template.innerHTML = html;
      body.replaceChildren(template.content);
      var seen = {};
      before.forEach(function (id) { seen[id] = true; });
      var added = 0;
      body.querySelectorAll("[data-feed] > .card").forEach(function (card) {
        if (!seen[card.getAttribute("data-id")]) { card.classList.add("is-new"); added += 1; }
      });
      announce(label + ": " + title + ". Feed updated" +
        (added ? ", " + added + " new recommendation" + (added === 1 ? "" : "s") : "") + ".");
      var again = body.querySelector('.card[data-id="' + CSS.escape(data.get("item")) + '"] button[value="' +
        CSS.escape(String(data.get("action"))) + '"]');
      (again || body.querySelector("[data-feed] button") || body).focus();
    }).catch(function () {
      form.classList.remove("is-busy");
      if (button && button.name) { // fall back to the plain form post
        var hidden = document.createElement("input");
        hidden.type = "hidden"; hidden.name = button.name; hidden.value = button.value;
        form.appendChild(hidden);
      }
      form.submit();
    });
  });
})();
