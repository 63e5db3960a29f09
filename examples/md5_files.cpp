// md5_files — the MD5 of many files, read concurrently: one tasklet per file
// (ThreadingX's md5 benchmark, in the seeds, without threads).
//
//   md5_files FILE...          like md5sum
//   md5_files                  makes 64 files of 1 MiB in a temporary folder,
//                              sums them, checks the sums, removes them
//
// At most 16 files are open at once (a Semaphore); reads go through the
// reactor, so while one tasklet hashes, others' reads are under way. The
// hashing itself runs on this one core: the multicore version comes with
// corelet's worker processes.
#include <corelet/corelet.hpp>

#include <openssl/evp.h>

#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

namespace {

std::string md5_of_file(const std::string& path) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || !EVP_DigestInit_ex(ctx.get(), EVP_md5(), nullptr)) throw std::runtime_error("EVP md5 init failed");
  corelet::File f = corelet::File::open(path);
  std::vector<char> buf(256 * 1024);
  off_t off = 0;
  while (std::size_t n = f.pread(buf.data(), buf.size(), off)) {
    EVP_DigestUpdate(ctx.get(), buf.data(), n);
    off += static_cast<off_t>(n);
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_DigestFinal_ex(ctx.get(), digest, &len);
  std::string hex;
  char two[3];
  for (unsigned i = 0; i < len; ++i) {
    std::snprintf(two, sizeof two, "%02x", digest[i]);
    hex += two;
  }
  return hex;
}

std::vector<std::string> sum_all(const std::vector<std::string>& paths) {
  corelet::Semaphore open_files(16);
  std::vector<corelet::Task<std::string>> tasks;
  for (const std::string& p : paths)
    tasks.push_back(corelet::spawn([&open_files, &p] {
      open_files.acquire();
      try {
        std::string s = md5_of_file(p);
        open_files.release();
        return s;
      } catch (...) {
        open_files.release();
        throw;
      }
    }));
  std::vector<std::string> sums;
  for (auto& t : tasks) {
    try {
      sums.push_back(t.join());
    } catch (const std::system_error& e) {
      sums.push_back(std::string("error: ") + e.what());
    }
  }
  return sums;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return corelet::run([&] {
      if (argc > 1) {
        std::vector<std::string> paths(argv + 1, argv + argc);
        const auto sums = sum_all(paths);
        int status = 0;
        for (std::size_t i = 0; i < paths.size(); ++i) {
          std::printf("%s  %s\n", sums[i].c_str(), paths[i].c_str());
          if (sums[i].rfind("error", 0) == 0) status = 1;
        }
        return status;
      }
      // Demo: files whose sums are known from another route (one file's sum
      // computed twice must agree; identical files must have equal sums).
      char tmpl[] = "/tmp/corelet_md5_XXXXXX";
      if (!::mkdtemp(tmpl)) throw std::system_error(errno, std::system_category(), "mkdtemp");
      const std::string dir = tmpl;
      std::vector<std::string> paths;
      std::string block(1 << 20, '\0');
      for (int i = 0; i < 64; ++i) {
        for (std::size_t j = 0; j < block.size(); ++j) block[j] = static_cast<char>((j * 31 + i % 8) & 0xff);
        paths.push_back(dir + "/file" + std::to_string(i));
        corelet::File::open(paths.back(), "w").write_all(block);
      }
      const auto sums = sum_all(paths);
      int mismatches = 0;
      for (int i = 0; i < 64; ++i)
        if (sums[i] != sums[i % 8]) ++mismatches;  // file i has the content of file i % 8
      std::printf("md5_files: %zu files of 1 MiB summed; file0 %s; %d mismatches\n", sums.size(), sums[0].c_str(),
                  mismatches);
      for (const auto& p : paths) ::unlink(p.c_str());
      ::rmdir(dir.c_str());
      return mismatches == 0 ? 0 : 1;
    });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "md5_files: %s\n", e.what());
    return 1;
  }
}
