// Embedded Tomcat 10 (the Debian libtomcat10-java jars) on loopback, running
// ParsersServlet as java-tomcat10 for families.py.
// usage: java TomcatParsers PORT BASEDIR
import jakarta.servlet.MultipartConfigElement;
import org.apache.catalina.Context;
import org.apache.catalina.Wrapper;
import org.apache.catalina.connector.Connector;
import org.apache.catalina.startup.Tomcat;

public class TomcatParsers {
    public static void main(String[] args) throws Exception {
        Tomcat tomcat = new Tomcat();
        tomcat.setBaseDir(args[1]);
        Connector conn = new Connector();
        conn.setPort(Integer.parseInt(args[0]));
        conn.setProperty("address", "127.0.0.1");
        tomcat.setConnector(conn);
        // A context with Tomcat's defaults: session tracking by cookie and URL.
        Context ctx = tomcat.addContext("", null);
        Wrapper w = Tomcat.addServlet(ctx, "parsers", new ParsersServlet("java-tomcat10", null));
        w.setMultipartConfigElement(new MultipartConfigElement(args[1]));
        ctx.addServletMappingDecoded("/*", "parsers");
        tomcat.start();
        tomcat.getServer().await();
    }
}
