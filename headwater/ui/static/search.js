// Search as you type: names completing what has been typed, from /api/v1/search/suggest.
(function () {
  const box = document.getElementById("search-box"), list = document.getElementById("suggestions");
  let timer = null, asked = "";
  box.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const prefix = box.value.trim();
      asked = prefix;
      if (!prefix) { list.replaceChildren(); return; }
      const response = await fetch("/api/v1/search/suggest?limit=8&prefix=" + encodeURIComponent(prefix));
      if (!response.ok || asked !== prefix) return;
      const items = (await response.json()).items;
      list.replaceChildren(...items.map((item) => {
        const li = document.createElement("li"), a = document.createElement("a");
        a.href = "/ui/datasets/" + item.dataset_id;
        a.textContent = item.text;
        li.appendChild(a);
        return li;
      }));
    }, 120);
  });
  document.addEventListener("click", (event) => { if (!list.contains(event.target)) list.replaceChildren(); });
})();
