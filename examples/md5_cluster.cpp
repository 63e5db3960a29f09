// md5_cluster — md5 of many files on every core: Pool::map sends each file
// name to a worker, which reads the file with corelet's I/O and hashes it
// with OpenSSL. Output is md5sum's format.
//
//   md5_cluster [--workers N] FILE...
//   md5_cluster [--workers N]          (64 files of 1 MiB made in a temp dir)
#include <corelet/corelet.hpp>

#include <openssl/evp.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

namespace {

// Reads the file through the worker's reactor and returns its md5 in hex.
std::string md5_file(std::string path) {
  corelet::File f = corelet::File::open(path, "r");
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_md5(), nullptr) != 1) throw std::runtime_error("EVP md5 init failed");
  std::vector<char> buf(1 << 20);
  for (;;) {
    const std::size_t n = f.read(buf.data(), buf.size());
    if (n == 0) break;
    EVP_DigestUpdate(ctx.get(), buf.data(), n);
  }
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), d, &len);
  std::string hex;
  char two[3];
  for (unsigned i = 0; i < len; ++i) {
    std::snprintf(two, sizeof two, "%02x", d[i]);
    hex += two;
  }
  return hex;
}
CORELET_REMOTE(md5_file);

}  // namespace

int main(int argc, char** argv) {
  corelet::Config cfg;
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--workers") == 0 && i + 1 < argc) cfg.workers = std::atoi(argv[++i]);
    else files.push_back(argv[i]);
  }
  std::filesystem::path tmp;
  if (files.empty()) {  // something to hash: 64 files of 1 MiB
    tmp = std::filesystem::temp_directory_path() / ("md5_cluster." + std::to_string(::getpid()));
    std::filesystem::create_directories(tmp);
    std::string block(1 << 20, '\0');
    for (int i = 0; i < 64; ++i) {
      for (std::size_t j = 0; j < block.size(); ++j) block[j] = static_cast<char>((j * 31 + static_cast<std::size_t>(i)) & 0xff);
      const auto p = tmp / ("file" + std::to_string(i));
      std::ofstream(p, std::ios::binary).write(block.data(), static_cast<std::streamsize>(block.size()));
      files.push_back(p.string());
    }
  }
  const int st = corelet::run(cfg, [&] {
    corelet::Pool pool;
    std::vector<std::string> sums = pool.map(md5_file, files, 1);
    for (std::size_t i = 0; i < files.size(); ++i) std::printf("%s  %s\n", sums[i].c_str(), files[i].c_str());
    std::fprintf(stderr, "md5_cluster: %zu files on %d workers\n", files.size(), corelet::num_workers());
    return 0;
  });
  if (!tmp.empty()) std::filesystem::remove_all(tmp);
  return st;
}
