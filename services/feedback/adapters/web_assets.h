// The rater web page's files (services/feedback/web), compiled into the binary.
#pragma once

#include <string_view>
#include <vector>

namespace greenloop::feedback {

/// One file of the page: its URL path ("/app.js"), content type and bytes.
struct WebAsset {
  std::string_view path;
  std::string_view content_type;
  std::string_view body;
};

/// Every embedded file; "/index.html" is the page itself.
const std::vector<WebAsset>& WebAssets();

}  // namespace greenloop::feedback
