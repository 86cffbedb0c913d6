// The API reference (/docs/api): Redoc renders the served OpenAPI document.
// The page's Content-Security-Policy admits styles by nonce only; Redoc
// gives each style element it injects the nonce passed here.
(function () {
  var el = document.getElementById("redoc");
  Redoc.init(el.dataset.specUrl, { nonce: el.dataset.nonce, hideDownloadButton: false }, el);
})();
