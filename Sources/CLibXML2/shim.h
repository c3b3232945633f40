#include <libxml/xmlversion.h>
// Debian's libxml2 is built with ICU, so encoding.h would pull in the system's
// <unicode/ucnv.h>, whose UErrorCode clashes with the copy Foundation carries
// (_FoundationICU). Swift never touches the ICU fields of xmlCharEncodingHandler
// (libxml2 allocates and reads them itself), so hiding them is safe.
#undef LIBXML_ICU_ENABLED
#include <libxml/HTMLparser.h>
#include <libxml/tree.h>
